#include "metrics/metrics_server.h"

#include <civetweb.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <sstream>

#include "metrics/registry.h"

namespace shadowtap::metrics {
namespace {

int reply(mg_connection* conn, int status, const char* contentType, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Service Unavailable", contentType, body.size());
  mg_write(conn, body.data(), body.size());
  return status;
}

int replyHealth(mg_connection* conn, const HealthStatus& s) {
  return reply(conn, s.ok ? 200 : 503, "text/plain; charset=utf-8", (s.ok ? "ok: " : "not ok: ") + s.detail + "\n");
}

}  // namespace

MetricsServer::MetricsServer(const HealthProbe& probe, const Registry& registry)
    : probe_(probe), registry_(registry) {}

MetricsServer::~MetricsServer() {
  if (ctx_) {
    mg_stop(ctx_);
  }
}

std::unique_ptr<MetricsServer> MetricsServer::start(const std::string& address, const HealthProbe& probe,
                                                    const Registry& registry, std::string* error) {
  auto server = std::unique_ptr<MetricsServer>(new MetricsServer(probe, registry));
  mg_init_library(0);
  const char* options[] = {"listening_ports", address.c_str(), "num_threads", "2", nullptr};
  mg_callbacks callbacks{};
  server->ctx_ = mg_start(&callbacks, nullptr, options);
  if (!server->ctx_) {
    *error = "cannot serve metrics on '" + address +
             "' (address in use or not local?); choose another with --metrics-address, or 'off'";
    return nullptr;
  }
  mg_set_request_handler(server->ctx_, "/metrics$", &MetricsServer::handleMetrics, server.get());
  mg_set_request_handler(server->ctx_, "/stats$", &MetricsServer::handleStats, server.get());
  mg_set_request_handler(server->ctx_, "/healthz$", &MetricsServer::handleHealth, server.get());
  mg_set_request_handler(server->ctx_, "/readyz$", &MetricsServer::handleReady, server.get());
  mg_server_port ports[4];
  if (mg_get_server_ports(server->ctx_, 4, ports) > 0) {
    server->port_ = ports[0].port;
  }
  return server;
}

int MetricsServer::handleMetrics(mg_connection* conn, void* self) {
  auto* s = static_cast<MetricsServer*>(self);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, s->registry_.collect().toPrometheus());
  return reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", out.str());
}

int MetricsServer::handleStats(mg_connection* conn, void* self) {
  auto* s = static_cast<MetricsServer*>(self);
  return reply(conn, 200, "application/json", s->registry_.collect().toJson() + "\n");
}

int MetricsServer::handleHealth(mg_connection* conn, void* self) {
  return replyHealth(conn, static_cast<MetricsServer*>(self)->probe_.live());
}

int MetricsServer::handleReady(mg_connection* conn, void* self) {
  return replyHealth(conn, static_cast<MetricsServer*>(self)->probe_.ready());
}

}  // namespace shadowtap::metrics
