#pragma once

#include <memory>
#include <string>
#include <vector>

struct mg_context;
struct mg_connection;

namespace shadowtap::metrics {

class Registry;

// Answer of a health probe: ok, and a short reason shown in the body.
struct HealthStatus {
  bool ok = false;
  std::string detail;
};

// What /healthz and /readyz ask. Called from the HTTP server's threads: the
// implementation must be thread-safe (atomics).
class HealthProbe {
 public:
  virtual ~HealthProbe() = default;
  virtual HealthStatus live() const = 0;   // process alive, capture loop turning
  virtual HealthStatus ready() const = 0;  // attached, ring buffer consumed recently
};

// Serves /metrics (Prometheus text format) and /stats (the same counters as
// one JSON object, see Snapshot::toJson), both from the registry at request
// time (nothing is computed on the data path), and /healthz and /readyz on one
// address. Stops when destroyed.
class MetricsServer {
 public:
  // `address` is "HOST:PORT" (IPv4 or a name; port 0 picks a free one). nullptr
  // and *error set when it cannot listen. `probe` and `registry` must outlive
  // the server.
  static std::unique_ptr<MetricsServer> start(const std::string& address, const HealthProbe& probe,
                                              const Registry& registry, std::string* error);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsServer(const HealthProbe& probe, const Registry& registry);
  static int handleMetrics(mg_connection* conn, void* self);
  static int handleStats(mg_connection* conn, void* self);
  static int handleHealth(mg_connection* conn, void* self);
  static int handleReady(mg_connection* conn, void* self);

  const HealthProbe& probe_;
  const Registry& registry_;
  mg_context* ctx_ = nullptr;
  int port_ = 0;
};

}  // namespace shadowtap::metrics
