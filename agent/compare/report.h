#pragma once

#include <cstddef>
#include <istream>
#include <string>

namespace shadowtap::compare {

struct ReportOptions {
  size_t examplesPerEndpoint = 3;  // differing pairs shown side by side per endpoint
  std::string title = "shadowtap comparison report";
  std::string source;              // input name shown in the page
};

// What the renderer read.
struct ReportSummary {
  size_t lines = 0;
  size_t diffLines = 0;
  size_t summaryLines = 0;
  size_t badLines = 0;  // not JSON, or not a line of DiffWriter's
  size_t endpoints = 0;
};

// Renders DiffWriter's JSON lines as one self-contained HTML page (inline CSS
// and JS, no external URL): endpoints sorted by difference rate (different /
// compared; summary lines give `compared`, else the diff lines are all there
// is), each with its regressed fields, its noisy fields listed separately, and
// up to examplesPerEndpoint differing pairs side by side (primary | mirror).
std::string renderReport(std::istream& in, const ReportOptions& options, ReportSummary* summary = nullptr);

// `shadowtap report DIFFS.jsonl [-o report.html] [--examples N] [--title T]`.
// argv[0] is the command name ("report"); DIFFS "-" reads stdin, no -o (or
// "-o -") writes stdout. Returns 0, or 2 with one line on stderr saying what is wrong.
int runReportCommand(int argc, char** argv);

}  // namespace shadowtap::compare
