// /metrics over cpp-httplib (ordinary thread stacks; see metrics.h for why not civetweb).
#include <httplib.h>

#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "latpred/metrics/metrics.h"

namespace latpred::metrics {

struct MetricsHttpServer::Impl {
  httplib::Server server;
  std::thread thread;
};

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

MetricsHttpServer::~MetricsHttpServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, Metrics* metrics) {
  auto impl = std::make_unique<Impl>();
  impl->server.Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  impl->server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("latpred metrics: see /metrics\n", "text/plain");
  });
  int bound = port == 0 ? impl->server.bind_to_any_port(host)
                        : (impl->server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for /metrics on ", host, ":", port, " (port in use?)"));
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->server.listen_after_bind(); });
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(impl), bound));
}

}  // namespace latpred::metrics
