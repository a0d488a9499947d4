#include "config.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <iostream>

namespace shadowtap {

uint32_t Config::sampleBasisPoints() const {
  return static_cast<uint32_t>(std::lround(mirrorPercentage * 100.0));
}

namespace {

// CLI11 validator for host:port: the port must be there and in range; the host
// is resolved later, where a failure can say more.
std::string checkHostPort(const std::string& value) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) {
    return "expected host:port (for example httpbin-mirror:8000 or [2001:db8::2]:8000)";
  }
  const std::string port = value.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoul(port) == 0 || std::stoul(port) > 65535) {
    return "port '" + port + "' is not a number from 1 to 65535";
  }
  return "";
}

}  // namespace

int parseConfig(int argc, char** argv, Config& c) {
  CLI::App app{
      "shadowtap: mirror live HTTP/1.1 traffic arriving on an interface to a shadow service,\n"
      "appending a suffix to the Host header, without touching production packets."};
  app.set_version_flag("--version", std::string("shadowtap ") + SHADOWTAP_VERSION);

  app.add_option("-i,--interface", c.interfaces, "Interface to capture ingress traffic on (repeatable)")
      ->required()
      ->take_all();
  app.add_option("-p,--port", c.port, "TCP destination port of the service to mirror")
      ->required()
      ->check(CLI::Range(1, 65535));
  app.add_option("-m,--mirror", c.mirror, "Mirror target host:port (a name is resolved at start)")
      ->required()
      ->check(CLI::Validator(checkHostPort, "HOST:PORT"));
  app.add_option("--mirror-percentage", c.mirrorPercentage,
                 "Share of connections mirrored, 0-100, fractions allowed (as Istio's mirrorPercentage)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--shadow-suffix", c.shadowSuffix, "Appended to the host in Host of mirrored requests")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& s) {
            if (s.empty()) {
              return std::string("must not be empty");
            }
            for (char ch : s) {
              if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_')) {
                return std::string("may contain only letters, digits, '-', '.' and '_'");
              }
            }
            return std::string();
          },
          "SUFFIX"));
  app.add_option("--log-level", c.logLevel, "trace, debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  app.add_option("--tc-priority", c.tcPriority, "Priority of our tc ingress filter (1-65535)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  app.add_option("--ring-buffer-mib", c.ringBufferMiB, "Kernel ring buffer size in MiB (power of two)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& s) {
            unsigned long v = std::stoul(s);
            return (v >= 1 && v <= 1024 && (v & (v - 1)) == 0) ? std::string()
                                                                 : std::string("must be a power of two from 1 to 1024");
          },
          "MiB"));
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
  app.add_option("--max-request-mib", c.maxRequestMiB, "Largest request mirrored (MiB); larger ones are counted and skipped")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--mirror-connections", c.mirrorConnections, "Keep-alive connections to the mirror")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
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
  app.add_option("--drain-timeout-ms", c.drainTimeoutMs, "On exit, time given to requests still queued for the mirror")
      ->capture_default_str();
  app.add_option("--summary-interval", c.summaryIntervalSec, "Seconds between counter summary lines (0: only at exit)")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "shadowtap: " << e.what() << " (see shadowtap --help)" << std::endl;
    return 2;
  }
  return -1;
}

}  // namespace shadowtap
