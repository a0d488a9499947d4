#include "config.h"

#include <CLI/CLI.hpp>

#include "capture/capture_options.h"
#include "compare/comparator.h"
#include "record/kafka_options.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace shadowtap {

namespace {

// CLI11 validator for host:port: the port must be there and in range; the host
// is resolved later, where a failure can say more.
std::string checkHostPort(const std::string& value) { return rules::checkHostPort(value); }

// Turns the shorthand flags and every --rule into rules, checked one by one and
// as a set. Empty on success, else the one line to print.
std::string buildRules(Config& c, bool shorthand) {
  rules::RuleDefaults defaults;
  defaults.suffix = c.shadowSuffix;
  defaults.connections = c.mirrorConnections;
  defaults.maxConnections = c.mirrorMaxConnections;
  defaults.queue = c.mirrorQueue;
  defaults.queueMiB = c.mirrorQueueMiB;
  defaults.maxRps = c.mirrorMaxRps;
  defaults.dropPolicy = c.mirrorDropPolicy == "oldest" ? rules::DropPolicy::kOldest : rules::DropPolicy::kNewest;
  std::vector<std::string> texts;
  if (shorthand) {
    if (c.mirror.empty() && !c.dryRun && c.recordPath.empty()) {
      return "--mirror is required with --port (or use --rule port=N,mirror=HOST:PORT; only --dry-run or "
             "--record work without a mirror)";
    }
    char pct[32];
    std::snprintf(pct, sizeof(pct), "%.17g", c.mirrorPercentage);
    std::string text = "port=" + std::to_string(c.port) + ",percentage=" + pct;
    if (!c.mirror.empty()) {
      text += ",mirror=" + c.mirror;
    }
    texts.push_back(text);
  } else if (!c.mirror.empty()) {
    return "--port is required with --mirror (or use --rule port=N,mirror=HOST:PORT)";
  }
  texts.insert(texts.end(), c.ruleTexts.begin(), c.ruleTexts.end());
  if (texts.empty()) {
    return "nothing to mirror: give --port N --mirror HOST:PORT, or one or more --rule port=N,mirror=HOST:PORT";
  }
  c.rules.clear();
  for (const std::string& text : texts) {
    std::string error;
    // Recording alone needs no mirror: such a rule captures and records only.
    auto rule = rules::parseRule(text, defaults, c.dryRun || !c.recordPath.empty(), &error);
    if (!rule) {
      return error;
    }
    c.rules.push_back(std::move(*rule));
  }
  return rules::checkRuleSet(c.rules);
}

// The compare flags against the rules. Empty when fine, else the one line to print.
std::string checkCompare(const Config& c, bool maxMibGiven) {
  bool any = false;
  for (const rules::Rule& r : c.rules) {
    if (r.compare && !r.hasMirror()) {
      return "rule '" + r.text + "': compare=true needs a mirror to compare with";
    }
    any = any || r.compare;
  }
  if (any && c.dryRun) {
    return "compare=true cannot be used with --dry-run (nothing is sent, so there is no response to compare)";
  }
  const bool flags = !c.compareOutput.empty() || !c.compareIgnoreHeaders.empty() || !c.compareIgnorePaths.empty() ||
                     maxMibGiven;
  if (flags && !any) {
    return "--compare-output/--compare-ignore-*/--compare-max-mib need a rule with compare=true (e.g. --rule "
           "port=N,mirror=H:P,compare=true)";
  }
  compare::CompareOptions co;
  co.ignoreHeaders = c.compareIgnoreHeaders;
  co.ignorePaths = c.compareIgnorePaths;
  std::string error;
  if (any && !compare::Comparator::create(co, &error)) {
    return "--compare-ignore-path: " + error;
  }
  return "";
}

// The Kafka recording flags. Empty when fine, else the one line to print.
std::string checkKafka(const Config& c, bool kafkaFlagsGiven) {
  const bool kafka = record::isKafkaTarget(c.recordPath);
  if (kafkaFlagsGiven && !kafka) {
    return "--record-kafka-* need a Kafka recording: --record kafka://BROKER[,BROKER...]/TOPIC";
  }
  if (!kafka) {
    return "";
  }
  record::KafkaOptions k;
  if (std::string error = record::parseKafkaTarget(c.recordPath, k); !error.empty()) {
    return error;
  }
  for (const std::string& opt : c.recordKafkaOpts) {
    if (std::string error = record::parseKafkaProperty(opt, k); !error.empty()) {
      return error;
    }
  }
  return "";
}

}  // namespace

namespace {
int parseInto(int argc, char** argv, Config& c, std::ostream& err);
}  // namespace

int parseConfig(int argc, char** argv, Config& c) { return parseInto(argc, argv, c, std::cerr); }

bool reparseConfig(int argc, char** argv, Config& c, std::string* error) {
  std::ostringstream err;
  int code = parseInto(argc, argv, c, err);
  if (code == -1) {
    return true;
  }
  *error = err.str();
  while (!error->empty() && error->back() == '\n') {
    error->pop_back();
  }
  if (error->empty()) {
    *error = "the command line asked for help or the version";
  }
  return false;
}

namespace {
// The rules: interfaces, the --port shorthand, --rule, and the rule defaults
// that are flags. Returns --port (a rule of its own when given).
CLI::Option* addRuleFlags(CLI::App& app, Config& c) {
  app.add_option("-i,--interface", c.interfaces, "Interface to capture ingress traffic on (repeatable)")
      ->required()
      ->take_all();
  CLI::Option* portOpt = app.add_option("-p,--port", c.port, "TCP destination port of the service to mirror (shorthand for one rule)")
      ->check(CLI::Range(1, 65535));
  app.add_option("-m,--mirror", c.mirror, "Mirror target host:port of the --port rule (a name is re-resolved periodically)")
      ->check(CLI::Validator(checkHostPort, "HOST:PORT"));
  app.add_option("--rule", c.ruleTexts,
                 "Mirroring rule (repeatable): port=N,mirror=HOST:PORT[;KEY=VALUE...][,mirror=...][,percentage=P][,suffix=S]"
                 "[,host=suffix|keep|HOST[:PORT]][,sample=connection|request|header:NAME][,dst=CIDR]"
                 "[,methods=GET|HEAD][,header=NAME:VALUE]...[,drop-header=NAME]...[,connections=N][,queue=N]"
                 "[,queue-mib=N][,max-rps=N][,drop-policy=newest|oldest][,compare=true[,secondary=HOST:PORT[;tls=true...]]]"
                 "[,tls=true[,tls-verify=false][,tls-ca=FILE]]. Up to 8 mirrors per rule, each deciding on its own; "
                 "percentage, suffix, host, connections, queue, queue-mib, max-rps, drop-policy and tls* are every "
                 "mirror's defaults, and a mirror's own after ';' (mirror=v3:8000;percentage=10;host=keep)")
      ->take_all();
#ifdef SHADOWTAP_HAVE_DRY_RUN
  app.add_flag("--dry-run", c.dryRun,
               "Print the requests that would be mirrored as JSON lines on stdout instead of sending them "
               "(rules then need no mirror)");
#endif
  app.add_option("--mirror-percentage", c.mirrorPercentage,
                 "Share of connections mirrored, 0-100, fractions allowed (as Istio's mirrorPercentage)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--shadow-suffix", c.shadowSuffix, "Appended to the host in Host of mirrored requests")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& s) { return rules::checkSuffix(s); },
          "SUFFIX"));
  return portOpt;
}

// Logs, metrics, and how the capture attaches and reads (workers, TLS).
void addAgentFlags(CLI::App& app, Config& c) {
  app.add_option("--log-level", c.logLevel, "trace, debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  app.add_option("--log-format", c.logFormat, "text, or json (one object per line, for log pipelines)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--metrics-address", c.metricsAddress,
                 "HOST:PORT serving /metrics, /stats, /healthz and /readyz, or 'off'")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& s) { return s == "off" ? std::string() : rules::checkHostPort(s); }, "HOST:PORT|off"));

  app.add_option("--attach", c.attach,
                 "How to hook ingress: auto (tcx where the kernel has it, else tc), tc (clsact + cls_bpf), tcx, "
                 "or xdp (through libxdp's dispatcher)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "tc", "tcx", "xdp"}));
  app.add_option("--mirror-io", c.mirrorIo,
                 "How HTTP/1 cleartext mirror connections send and receive: uring (io_uring: a loop turn's sends and "
                 "receives in one system call), epoll (a send and a receive per request), or auto (uring where the "
                 "kernel allows io_uring, else epoll). h2c and TLS mirrors always use epoll")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "uring", "epoll"}));
  app.add_flag("!--no-adaptive-wakeups", c.adaptiveWakeups,
               "Wake the agent for every ring buffer record instead of in batches (more CPU, lower latency)");
  app.add_flag("--tls", c.tls,
               "Also mirror HTTPS services that use OpenSSL 3: read the decrypted traffic of the processes that "
               "map libssl, through uprobes (only connections whose local port has a rule)");
  app.add_option("--tls-library", c.tlsLibrary,
                 "With --tls: the libssl.so.3 file to probe (e.g. a container's /proc/PID/root/usr/lib/...); "
                 "default: the one this host's loader finds")
      ->check(CLI::ExistingFile);
  app.add_option("--tc-priority", c.tcPriority, "Priority of our tc ingress filter (1-65535)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  app.add_option("--state-dir", c.stateDir,
                 "tc mode: directory shared by the shadowtap instances of a host, where each locks the filters it "
                 "attached, so a second instance leaves the first one's alone ('' turns this off)")
      ->capture_default_str();
  app.add_option("--ring-buffer-mib", c.ringBufferMiB, "Kernel ring buffer size in MiB (power of two)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& s) {
            unsigned long v = std::stoul(s);
            return (v >= 1 && v <= 1024 && (v & (v - 1)) == 0) ? std::string()
                                                                 : std::string("must be a power of two from 1 to 1024");
          },
          "MiB"));
  app.add_option("--workers", c.workersText,
                 "Worker threads, each reading its own ring buffer and owning its connections' flows and mirror "
                 "connections (1-64, or auto: a quarter of the usable cores, 1 to 4, at most one per CPU of a "
                 "cgroup CPU limit)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& s) {
            if (s == "auto") {
              return std::string();
            }
            char* end = nullptr;
            const unsigned long v = std::strtoul(s.c_str(), &end, 10);
            return (!s.empty() && *end == '\0' && v >= 1 && v <= 64) ? std::string()
                                                                     : std::string("must be 1 to 64, or auto");
          },
          "N|auto"));
}

// Reassembly and framing limits.
void addLimitFlags(CLI::App& app, Config& c) {
  app.add_option("--max-flows", c.maxFlows, "Connections tracked at once")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-flow-buffer-mib", c.maxFlowBufferMiB, "Out-of-order bytes held per connection (MiB)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-buffer-mib", c.maxTotalBufferMiB, "Bytes held for reassembly and framing over all connections (MiB)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--idle-timeout", c.idleTimeoutSec, "Seconds without a segment before a connection is forgotten")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--gap-timeout-ms", c.gapTimeoutMs, "Milliseconds a sequence hole may stay open before it is given up")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-request-mib", c.maxRequestMiB,
                 "Largest request held whole (MiB): recorded, compared; larger ones are streamed to the mirror "
                 "(--stream-window-kib), or counted and skipped when that is 0")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--stream-window-kib", c.streamWindowKiB,
                 "Body bytes a streamed request may hold between capture and mirror (KiB); a mirror further behind "
                 "aborts that request (counted). 0: requests over --max-request-mib are skipped")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--max-header-kib", c.maxHeaderKiB,
                 "Largest request line + header section (KiB); larger requests are counted and skipped")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-request-line-kib", c.maxRequestLineKiB,
                 "Longest request line (KiB); longer ones give up the connection (counted)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-resync-scan-kib", c.maxResyncScanKiB,
                 "Bytes held while looking for a request start after a gap or a late join (KiB)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-flow-buffer-segments", c.maxFlowBufferSegments,
                 "Out-of-order pieces held per connection; beyond, the oldest hole becomes a gap")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--closed-linger-ms", c.closedLingerMs,
                 "How long a closed connection is remembered so late retransmissions are ignored")
      ->capture_default_str();
}

// The mirror pools' defaults (rules may override them).
void addMirrorFlags(CLI::App& app, Config& c) {
  app.add_option("--mirror-connections", c.mirrorConnections,
                 "Keep-alive connections to each mirror opened on demand (the floor); beyond, the pool grows with the "
                 "mirror's latency up to --mirror-max-connections, and shrinks back when idle")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--mirror-max-connections", c.mirrorMaxConnections,
                 "Connections to each mirror at most, for a slow mirror (about 1 KiB of memory and one file "
                 "descriptor each; 1024 carry about 4,000 req/s to a mirror answering in 200 ms); a rule's connections=N "
                 "fixes its pool at N")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--mirror-queue", c.mirrorQueue, "Requests waiting for the mirror; beyond it new ones are dropped and counted")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--mirror-queue-mib", c.mirrorQueueMiB, "Bytes of requests waiting for the mirror (MiB)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--connect-timeout-ms", c.connectTimeoutMs, "Mirror connect timeout")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--response-timeout-ms", c.responseTimeoutMs, "Mirror response timeout")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--idle-connection-timeout-ms", c.idleTimeoutMs, "An unused keep-alive connection to the mirror is closed after this long")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--resolve-interval", c.resolveIntervalSec,
                 "Seconds between re-resolutions of mirror names, off the hot path (0: only at start)")
      ->capture_default_str();
  app.add_option("--mirror-max-rps", c.mirrorMaxRps,
                 "Requests per second sent to each mirror target (default of every rule's max-rps; 0: unlimited)")
      ->capture_default_str();
  app.add_option("--mirror-drop-policy", c.mirrorDropPolicy,
                 "When a mirror queue is full, drop the newest request or the oldest queued one")
      ->capture_default_str()
      ->check(CLI::IsMember({"newest", "oldest"}));
  app.add_option("--drain-timeout-ms", c.drainTimeoutMs,
                 "On exit, time given to requests still queued for the mirror and to Kafka recording messages "
                 "not yet delivered")
      ->capture_default_str();
}

// Recording, to files or Kafka. Returns the Kafka-only flags (refused without
// a kafka:// target).
std::vector<CLI::Option*> addRecordFlags(CLI::App& app, Config& c) {
  app.add_option("--record", c.recordPath,
                 "Also write every captured request to PATH: .har (HAR 1.2), .jsonl (one JSON object per request) "
                 "or .pcap (the captured TCP segments), rotated and capped; or to Kafka, one message per request "
                 "(the .jsonl object): kafka://BROKER[,BROKER...]/TOPIC. Redacted by default");
  app.add_option("--record-redact", c.recordRedact,
                 "Redaction of recordings: default (Authorization, Proxy-Authorization, Cookie, Set-Cookie), none, "
                 "or default plus header:NAME and query:NAME items, comma-separated")
      ->capture_default_str();
  app.add_option("--record-bodies", c.recordBodies, "Keep request bodies in recordings (false: length and SHA-256 only)")
      ->capture_default_str();
  app.add_flag("--record-pcap-unredacted", c.recordPcapUnredacted,
               "Allow a .pcap recording, which stores segments raw, while redaction is on");
  app.add_option("--record-max-file-mib", c.recordMaxFileMiB, "Rotate a recording file at this size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--record-max-total-mib", c.recordMaxTotalMiB,
                 "Disk used by recordings; the oldest files are deleted beyond it")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--record-rotate-seconds", c.recordRotateSeconds, "Also rotate after this many seconds (0: never)")
      ->capture_default_str();
  std::vector<CLI::Option*> kafkaFlags;
  kafkaFlags.push_back(app.add_option("--record-kafka-acks", c.recordKafkaAcks,
                                      "Kafka recording: acknowledgement a message waits for: all (every in-sync "
                                      "replica; idempotent, ordered), 1 (the leader) or 0 (none)")
                           ->capture_default_str()
                           ->check(CLI::IsMember({"all", "1", "0"})));
  kafkaFlags.push_back(app.add_option("--record-kafka-compression", c.recordKafkaCompression,
                                      "Kafka recording: none, gzip, snappy, lz4 or zstd")
                           ->capture_default_str()
                           ->check(CLI::IsMember({"none", "gzip", "snappy", "lz4", "zstd"})));
  kafkaFlags.push_back(app.add_option("--record-kafka-client-id", c.recordKafkaClientId,
                                      "Kafka recording: the client.id the brokers see (quotas, logs)")
                           ->capture_default_str());
  kafkaFlags.push_back(app.add_option("--record-kafka-opt", c.recordKafkaOpts,
                                      "Kafka recording: a librdkafka producer property KEY=VALUE (repeatable), e.g. "
                                      "security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512, ssl.ca.location=FILE, "
                                      "queue.buffering.max.kbytes=N; applied last, so it wins")
                           ->take_all());
  return kafkaFlags;
}

// Compare mode's output and the counters' summaries.
void addOutputFlags(CLI::App& app, Config& c) {
  app.add_option("--compare-output", c.compareOutput,
                 "Rules with compare=true: write differing response pairs as JSON lines to PATH (the input of "
                 "`shadowtap report PATH -o report.html`)");
  app.add_option("--compare-ignore-header", c.compareIgnoreHeaders,
                 "Response header never compared, in addition to Date, Server, Connection, Keep-Alive (repeatable)")
      ->take_all();
  app.add_option("--compare-ignore-path", c.compareIgnorePaths,
                 "JSON path not compared in JSON bodies, e.g. $.timestamp or $.items[*].id (repeatable)")
      ->take_all();
  app.add_option("--compare-max-mib", c.compareMaxMiB,
                 "Rules with compare=true: MiB of responses held while their exchange waits to be compared, all "
                 "rules together; a response that would go over is not kept and its exchange counted uncompared")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--summary-interval", c.summaryIntervalSec, "Seconds between counter summary lines (0: only at exit)")
      ->capture_default_str();
  app.add_option("--stats-file", c.statsFile,
                 "Write every counter as one JSON object (as /stats serves it) to FILE at every summary and at exit");
}

int parseInto(int argc, char** argv, Config& c, std::ostream& err) {
  CLI::App app{
      "shadowtap: mirror live HTTP traffic (HTTP/1.1, and cleartext HTTP/2: h2c, gRPC) arriving on an\n"
      "interface to a shadow service, appending a suffix to the host in Host or :authority, without\n"
      "touching production packets.\n\n"
      "Subcommands: 'shadowtap replay' sends recorded requests again, 'shadowtap report' renders\n"
      "compare differences as HTML; each has --help."};
  app.set_version_flag("--version", std::string("shadowtap ") + SHADOWTAP_VERSION);
  // A misspelt key in the file must not be silently ignored.
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.set_config("--config", "", "TOML file with the same settings (keys are the long flag names, "
                 "rules as rule = [\"port=...\", ...]); flags given on the command line override it");

  CLI::Option* portOpt = addRuleFlags(app, c);
  addAgentFlags(app, c);
  addLimitFlags(app, c);
  addMirrorFlags(app, c);
  const std::vector<CLI::Option*> kafkaFlags = addRecordFlags(app, c);
  addOutputFlags(app, c);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    err << "shadowtap: " << e.what() << " (see shadowtap --help)" << std::endl;
    return 2;
  }
  c.workers = c.workersText == "auto" ? 0 : static_cast<uint32_t>(std::stoul(c.workersText));
  // Here as well as at load: a reload must refuse it before the running capture
  // is touched. auto (at most 4 workers) fits in the smallest buffer (1 MiB).
  if (std::string error = capture::checkRingShare(c.ringBufferMiB << 20, c.workers);
      !error.empty()) {
    err << "shadowtap: " << error << std::endl;
    return 2;
  }
  if (std::string error = buildRules(c, portOpt->count() > 0); !error.empty()) {
    err << "shadowtap: " << error << " (see shadowtap --help)" << std::endl;
    return 2;
  }
  if (std::string error = checkCompare(c, app.get_option("--compare-max-mib")->count() > 0); !error.empty()) {
    err << "shadowtap: " << error << " (see shadowtap --help)" << std::endl;
    return 2;
  }
  const bool kafkaFlagsGiven =
      std::any_of(kafkaFlags.begin(), kafkaFlags.end(), [](const CLI::Option* o) { return o->count() > 0; });
  if (std::string error = checkKafka(c, kafkaFlagsGiven); !error.empty()) {
    err << "shadowtap: " << error << " (see shadowtap --help)" << std::endl;
    return 2;
  }
  return -1;
}
}  // namespace

}  // namespace shadowtap
