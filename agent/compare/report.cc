#include "compare/report.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace shadowtap::compare {
namespace {

using nlohmann::json;

struct EndpointReport {
  uint64_t rule = 0;
  std::string endpoint;
  // From summary lines (the last one per endpoint wins).
  bool haveSummary = false;
  uint64_t sumCompared = 0, sumEqual = 0, sumDifferent = 0, sumNoisy = 0;
  // From diff lines.
  uint64_t linesDifferent = 0, linesNoisy = 0;
  std::map<std::string, uint64_t> regressions;  // field -> pairs in which it differed (not noise)
  std::set<std::string> noisyFields;
  std::vector<json> examples;       // outcome "different"
  std::vector<json> noisyExamples;  // outcome "noisy", shown when there is nothing else

  uint64_t different() const { return std::max(sumDifferent, linesDifferent); }
  uint64_t noisy() const { return std::max(sumNoisy, linesNoisy); }
  uint64_t compared() const { return std::max(sumCompared, linesDifferent + linesNoisy); }
  double rate() const { return compared() == 0 ? 0.0 : double(different()) / double(compared()); }
};

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string str(const json& o, const char* key) {
  const auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

uint64_t num(const json& o, const char* key) {
  const auto it = o.find(key);
  return it != o.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

std::string percent(double r) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %%", r * 100.0);
  return buf;
}

std::string valueCell(const json& v) {
  if (v.is_null()) {
    return "<span class=\"absent\">(absent)</span>";
  }
  return "<code>" + esc(v.is_string() ? v.get<std::string>() : v.dump()) + "</code>";
}

// One response as text: status line, headers, blank line, body.
std::string responseText(const json& r) {
  if (!r.is_object()) {
    return "(none)";
  }
  std::string s = "HTTP " + std::to_string(r.value("status", 0)) + "\n";
  if (const auto h = r.find("headers"); h != r.end() && h->is_array()) {
    for (const json& pair : *h) {
      if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
        s += pair[0].get<std::string>() + ": " + pair[1].get<std::string>() + "\n";
      }
    }
  }
  s += "\n";
  s += str(r, "body");
  if (r.value("body_truncated", false)) {
    s += "\n... (" + std::to_string(num(r, "body_length")) + " bytes in all)";
  }
  return s;
}

const char* kStyle = R"CSS(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:16px 24px}
header h1{margin:0 0 4px;font-size:20px}
header .meta{color:#b8c0d0;font-size:13px}
main{padding:16px 24px;max-width:1400px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #dde1e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
section.endpoint{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:18px 0;padding:12px 16px}
section.endpoint h2{margin:0 0 6px;font-size:17px;font-family:ui-monospace,monospace}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;margin-left:6px}
.badge.regression{background:#fde2e1;color:#a4161a}
.badge.noise{background:#fff3bf;color:#7a5b00}
.badge.ok{background:#d3f9d8;color:#2b8a3e}
ul.regressions li{color:#a4161a}
ul.noisy-fields li{color:#7a5b00}
.example{border-top:1px dashed #dde1e8;margin-top:10px;padding-top:8px}
.side{display:grid;grid-template-columns:1fr 1fr;gap:10px;margin-top:6px}
.side pre{background:#f8f9fb;border:1px solid #dde1e8;padding:8px;margin:0;white-space:pre-wrap;word-break:break-all;max-height:360px;overflow:auto;font-size:12px}
.side h4{margin:0 0 4px;font-size:13px}
tr.noisy td{color:#7a5b00;background:#fffbe6}
tr.regression td{background:#fff5f5}
.absent{color:#868e96;font-style:italic}
#filter{padding:4px 8px;width:320px;margin:8px 0}
)CSS";

const char* kScript = R"JS(
document.documentElement.setAttribute('data-report-ready', 'yes');
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('section.endpoint').forEach(function (s) {
    s.style.display = s.dataset.endpoint.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
  });
  document.querySelectorAll('#summary tbody tr').forEach(function (r) {
    r.style.display = r.dataset.endpoint.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
  });
});
)JS";

void renderExample(std::ostream& h, const json& ex) {
  const std::string outcome = str(ex, "outcome");
  h << "<div class=\"example\" data-outcome=\"" << esc(outcome) << "\">";
  h << "<div><b>" << esc(str(ex, "method")) << " " << esc(str(ex, "target")) << "</b> <span class=\"meta\">"
    << esc(str(ex, "time")) << "</span> <span class=\"badge " << (outcome == "different" ? "regression" : "noise")
    << "\">" << esc(outcome) << "</span></div>";
  h << "<table class=\"diffs\"><thead><tr><th>field</th><th>primary</th><th>mirror</th></tr></thead><tbody>";
  if (const auto d = ex.find("differences"); d != ex.end() && d->is_array()) {
    for (const json& diff : *d) {
      if (!diff.is_object()) {
        continue;
      }
      const bool noisy = diff.value("noisy", false);
      h << "<tr class=\"" << (noisy ? "noisy" : "regression") << "\" data-path=\"" << esc(str(diff, "path"))
        << "\"><td><code>" << esc(str(diff, "path")) << "</code>" << (noisy ? " (noise)" : "") << "</td><td>"
        << valueCell(diff.value("primary", json())) << "</td><td>" << valueCell(diff.value("mirror", json()))
        << "</td></tr>";
    }
  }
  if (num(ex, "differences_omitted") > 0) {
    h << "<tr><td colspan=\"3\">" << num(ex, "differences_omitted") << " more differences not recorded</td></tr>";
  }
  h << "</tbody></table>";
  h << "<div class=\"side\"><div><h4>primary</h4><pre class=\"primary\">"
    << esc(responseText(ex.value("primary", json()))) << "</pre></div><div><h4>mirror</h4><pre class=\"mirror\">"
    << esc(responseText(ex.value("mirror", json()))) << "</pre></div></div>";
  h << "</div>";
}

}  // namespace

namespace {

// A "diff" line's noisy fields, regressed fields and example.
void addDiffLine(EndpointReport& e, const json& o, const ReportOptions& options) {
  const std::string outcome = str(o, "outcome");
  if (const auto nf = o.find("noisy_fields"); nf != o.end() && nf->is_array()) {
    for (const json& f : *nf) {
      if (f.is_string()) {
        e.noisyFields.insert(f.get<std::string>());
      }
    }
  }
  if (const auto d = o.find("differences"); d != o.end() && d->is_array()) {
    for (const json& diff : *d) {
      if (!diff.is_object()) {
        continue;
      }
      std::string field = str(diff, "field");
      if (field.empty()) {
        field = str(diff, "path");
      }
      if (diff.value("noisy", false)) {
        e.noisyFields.insert(field);
      } else {
        ++e.regressions[field];
      }
    }
  }
  if (outcome == "different") {
    ++e.linesDifferent;
    if (e.examples.size() < options.examplesPerEndpoint) {
      e.examples.push_back(o);
    }
  } else {
    ++e.linesNoisy;
    if (e.noisyExamples.size() < 1) {
      e.noisyExamples.push_back(o);
    }
  }
}

void renderSummaryTable(std::ostream& h, const std::vector<const EndpointReport*>& order) {
  h << "<table id=\"summary\"><thead><tr><th>endpoint</th><th>rule</th><th>compared</th><th>different</th>"
       "<th>noisy</th><th>difference rate</th><th>regressed fields</th></tr></thead><tbody>\n";
  for (size_t i = 0; i < order.size(); ++i) {
    const EndpointReport& e = *order[i];
    h << "<tr data-endpoint=\"" << esc(e.endpoint) << "\"><td><a href=\"#ep-" << i << "\"><code>" << esc(e.endpoint)
      << "</code></a></td><td class=\"num\">" << e.rule << "</td><td class=\"num\">" << e.compared()
      << "</td><td class=\"num\">" << e.different() << "</td><td class=\"num\">" << e.noisy()
      << "</td><td class=\"num\">" << percent(e.rate()) << "</td><td>";
    size_t n = 0;
    for (const auto& [field, count] : e.regressions) {
      h << (n++ > 0 ? ", " : "") << "<code>" << esc(field) << "</code>";
    }
    h << "</td></tr>\n";
  }
  h << "</tbody></table>\n";
}

// The endpoint's section; `i` is its place in the summary table (its anchor).
void renderEndpoint(std::ostream& h, const EndpointReport& e, size_t i) {
  const bool regression = e.different() > 0;
  h << "<section class=\"endpoint\" id=\"ep-" << i << "\" data-endpoint=\"" << esc(e.endpoint)
    << "\" data-rule=\"" << e.rule << "\" data-different=\"" << e.different() << "\" data-compared=\""
    << e.compared() << "\" data-regression=\"" << (regression ? "true" : "false") << "\">";
  h << "<h2>" << esc(e.endpoint) << "<span class=\"badge " << (regression ? "regression\">regression" : e.noisy() > 0 ? "noise\">noise only" : "ok\">equal")
    << "</span></h2>";
  h << "<div class=\"counts\">rule " << e.rule << " &middot; " << e.compared() << " compared &middot; "
    << e.different() << " different (" << percent(e.rate()) << ") &middot; " << e.noisy() << " noise only</div>";
  if (!e.regressions.empty()) {
    h << "<h3>Regressed fields</h3><ul class=\"regressions\">";
    for (const auto& [field, count] : e.regressions) {
      h << "<li data-field=\"" << esc(field) << "\"><code>" << esc(field) << "</code> in " << count
        << (count == 1 ? " pair" : " pairs") << "</li>";
    }
    h << "</ul>";
  }
  if (!e.noisyFields.empty()) {
    h << "<h3>Noisy fields (differ between primary and secondary; not regressions)</h3><ul class=\"noisy-fields\">";
    for (const std::string& f : e.noisyFields) {
      h << "<li data-field=\"" << esc(f) << "\"><code>" << esc(f) << "</code></li>";
    }
    h << "</ul>";
  }
  const std::vector<json>& shown = e.examples.empty() ? e.noisyExamples : e.examples;
  if (!shown.empty()) {
    h << "<h3>Examples</h3>";
    for (const json& ex : shown) {
      renderExample(h, ex);
    }
  }
  h << "</section>\n";
}

}  // namespace

std::string renderReport(std::istream& in, const ReportOptions& options, ReportSummary* summaryOut) {
  ReportSummary summary;
  std::map<std::pair<uint64_t, std::string>, EndpointReport> endpoints;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) {
      continue;
    }
    ++summary.lines;
    const json o = json::parse(line, nullptr, false);
    if (o.is_discarded() || !o.is_object() || !o.contains("endpoint")) {
      ++summary.badLines;
      continue;
    }
    const std::string type = str(o, "type");
    EndpointReport& e = endpoints[{num(o, "rule"), str(o, "endpoint")}];
    e.rule = num(o, "rule");
    e.endpoint = str(o, "endpoint");
    if (type == "summary") {
      ++summary.summaryLines;
      e.haveSummary = true;
      e.sumCompared = num(o, "compared");
      e.sumEqual = num(o, "equal");
      e.sumDifferent = num(o, "different");
      e.sumNoisy = num(o, "noisy");
      continue;
    }
    if (type != "diff") {
      ++summary.badLines;
      continue;
    }
    ++summary.diffLines;
    addDiffLine(e, o, options);
  }

  std::vector<const EndpointReport*> order;
  uint64_t totalCompared = 0, totalDifferent = 0, totalNoisy = 0;
  for (const auto& [key, e] : endpoints) {
    order.push_back(&e);
    totalCompared += e.compared();
    totalDifferent += e.different();
    totalNoisy += e.noisy();
  }
  std::stable_sort(order.begin(), order.end(), [](const EndpointReport* a, const EndpointReport* b) {
    if (a->rate() != b->rate()) {
      return a->rate() > b->rate();
    }
    if (a->different() != b->different()) {
      return a->different() > b->different();
    }
    return a->endpoint < b->endpoint;
  });
  summary.endpoints = order.size();

  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << esc(options.title)
    << "</title><style>" << kStyle << "</style></head><body>\n";
  h << "<header><h1>" << esc(options.title) << "</h1><div class=\"meta\">"
    << (options.source.empty() ? "" : esc(options.source) + " &middot; ") << order.size() << " endpoints &middot; "
    << totalCompared << " compared &middot; <span id=\"total-different\">" << totalDifferent
    << "</span> different &middot; " << totalNoisy << " noise only";
  if (summary.badLines > 0) {
    h << " &middot; " << summary.badLines << " unreadable lines skipped";
  }
  h << "</div></header>\n<main>\n";
  h << "<input id=\"filter\" placeholder=\"filter endpoints\" aria-label=\"filter endpoints\">\n";
  renderSummaryTable(h, order);

  for (size_t i = 0; i < order.size(); ++i) {
    renderEndpoint(h, *order[i], i);
  }
  h << "</main>\n<script>" << kScript << "</script>\n</body></html>\n";
  if (summaryOut != nullptr) {
    *summaryOut = summary;
  }
  return h.str();
}

namespace {

// Writes the page to `output` ("-": stdout); false (said on stderr) when it cannot.
bool writePage(const std::string& html, const std::string& output) {
  if (output == "-") {
    std::fwrite(html.data(), 1, html.size(), stdout);
    return std::fflush(stdout) == 0;
  }
  std::FILE* f = std::fopen(output.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "shadowtap report: cannot write '%s': %s\n", output.c_str(), std::strerror(errno));
    return false;
  }
  const bool ok = std::fwrite(html.data(), 1, html.size(), f) == html.size();
  if (std::fclose(f) != 0 || !ok) {
    std::fprintf(stderr, "shadowtap report: cannot write '%s': %s\n", output.c_str(), std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

int runReportCommand(int argc, char** argv) {
  CLI::App app{"Render the differences that shadowtap --compare-output wrote (JSON lines) as one "
               "self-contained HTML page: endpoints sorted by difference rate, with examples side by side."};
  app.name("shadowtap report");
  std::string input;
  std::string output = "-";
  ReportOptions options;
  app.add_option("input", input, "DIFFS.jsonl from --compare-output (- reads stdin)")->required();
  app.add_option("-o,--output", output, "where the HTML page goes (- or none: stdout)");
  app.add_option("--examples", options.examplesPerEndpoint, "example differences shown per endpoint")
      ->check(CLI::Range(0, 1000));
  app.add_option("--title", options.title, "the page's title");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "shadowtap report: " << e.what() << " (see shadowtap report --help)" << std::endl;
    return 2;
  }
  std::string html;
  ReportSummary summary;
  options.source = input == "-" ? "stdin" : input;
  if (input == "-") {
    html = renderReport(std::cin, options, &summary);
  } else {
    std::ifstream in(input);
    if (!in) {
      std::fprintf(stderr, "shadowtap report: cannot read '%s': %s\n", input.c_str(), std::strerror(errno));
      return 2;
    }
    html = renderReport(in, options, &summary);
  }
  if (summary.lines > 0 && summary.badLines == summary.lines) {
    std::fprintf(stderr, "shadowtap report: '%s' has no line written by --compare (%zu unreadable)\n",
                 input.c_str(), summary.badLines);
    return 2;
  }
  if (!writePage(html, output)) {
    return 2;
  }
  std::fprintf(stderr, "shadowtap report: %zu endpoints from %zu lines -> %s\n", summary.endpoints, summary.lines,
               output.c_str());
  return 0;
}

}  // namespace shadowtap::compare
