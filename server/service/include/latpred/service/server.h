// latpred-server: the gRPC service with its store and models, wired from Options.
#ifndef LATPRED_SERVICE_SERVER_H_
#define LATPRED_SERVICE_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "latpred/predictor/predictor.h"

namespace latpred::service {

// What one device may hold and what one fit may cost. A request over a limit is
// RESOURCE_EXHAUSTED naming the limit and its flag, and stores nothing.
struct Limits {
  // Samples one device may hold in one space (--max-samples-per-device). A SubmitSamples
  // batch that would take it past is refused whole, `partial` or not; a sample of an
  // architecture already stored replaces it and adds nothing.
  int64_t max_samples_per_device = 100000;
  // Labels of one device (--max-labels), and bytes of each label's key and of its value
  // (--max-label-length).
  int max_labels = 64;
  int max_label_length = 256;
  // Descriptor features of one device (--max-features).
  int max_features = 1024;
  // Samples one fit uses at most (--max-fit-samples): a device with more is fit on a
  // subset fixed by a hash of each architecture (SelectFitSamples in model_manager.h).
  int max_fit_samples = 2000;
  // Fits of at most this many samples run on a job thread of their own, so that they
  // never wait behind a bigger one.
  int small_fit_samples = 200;
};

struct Options {
  // Address to listen on; port 0 picks a free one (see Server::port()).
  std::string listen = "127.0.0.1:50051";
  // Store URI: a file path, sqlite:PATH or postgresql://... Empty: <data_dir>/latpred.db.
  std::string store_uri;
  // Directory for the store and other state.
  std::string data_dir;
  // Directory holding the bundled measurements (help/, eagle/).
  std::string bundled_data_dir;
  // Bundled devices left out of the source set (e.g. to evaluate one as a new device).
  std::set<std::string> exclude_devices;
  // Port for Prometheus' /metrics on the host of `listen`; 0 picks a free one, -1 is off.
  int metrics_port = -1;
  // TLS on the gRPC port when both are set (PEM files).
  std::string tls_cert_file;
  std::string tls_key_file;
  // Bearer token for RegisterDevice, SubmitSamples and AdaptDevice ("" = none), and
  // whether reads need it too.
  std::string token;
  bool token_for_reads = false;
  // Largest PredictLatency / SubmitSamples batch accepted.
  int max_batch = 16384;
  Limits limits;
  // Adapt's settings: the parts it averages and their priors (--adapt-off).
  predictor::AdaptOptions adapt;
  // How often to poll the store for models and devices other replicas stored (0: never).
  int sync_interval_ms = 1000;
  // Threads for training and inference (0: all cores).
  int threads = 0;
  predictor::TrainOptions train;
  // Where progress lines go (default: stderr).
  std::function<void(const std::string&)> log;
};

// A running server. Create() binds the port and returns at once; importing the bundled
// data and training or loading the models continue in the background, and
// grpc.health.v1 reports SERVING once they are ready.
class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Create(const Options& options);
  ~Server();

  // The port bound (useful with port 0).
  int port() const;
  // The /metrics port bound, or -1 when metrics are off.
  int metrics_port() const;
  // Blocks until the models are ready (OK) or their preparation failed.
  absl::Status WaitUntilReady();
  // Blocks until Shutdown() is called from another thread.
  void Wait();
  // Reports NOT_SERVING, stops accepting calls, finishes the ones in flight.
  void Shutdown();

  struct State;

 private:
  explicit Server(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_SERVER_H_
