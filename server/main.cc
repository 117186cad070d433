// latpred-server: serves latency predictions over gRPC. Flags become Server::Options;
// SIGINT or SIGTERM shuts it down cleanly.
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "latpred/service/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "HOST:PORT to serve gRPC on (port 0: a free one)");
ABSL_FLAG(std::string, store, "",
          "store URI: a SQLite file path or sqlite:PATH (default: DATA_DIR/latpred.db), or "
          "postgresql://USER@HOST:PORT/DB for several replicas on one database (password "
          "from PGPASSWORD or ~/.pgpass, not the command line); default from $LATPRED_STORE");
ABSL_FLAG(std::string, data_dir, "",
          "directory for the store (default: $XDG_DATA_HOME/latpred or ~/.local/share/latpred)");
ABSL_FLAG(std::string, bundled_data, LATPRED_BUNDLED_DATA_DIR,
          "directory of the bundled public measurements (help/, eagle/)");
ABSL_FLAG(std::string, exclude_devices, "",
          "comma-separated bundled devices to leave out of the source set on first import");
ABSL_FLAG(int, metrics_port, -1,
          "port for Prometheus /metrics on the --listen host (0: a free one; -1: off)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve gRPC over TLS (with --tls-key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, token_file, "",
          "file holding the bearer token that writes need (or set LATPRED_TOKEN); never "
          "pass the token itself on the command line");
ABSL_FLAG(bool, token_for_reads, false,
          "require the token for reads too (every LatencyPredictor call but GetServerInfo; "
          "grpc.health.v1 and server reflection stay open)");
ABSL_FLAG(int, sync_interval_ms, 1000,
          "how often to poll the store for models and devices that other replicas "
          "(servers on the same PostgreSQL database) stored; 0: never");
ABSL_FLAG(int, max_batch, 16384, "largest PredictLatency / SubmitSamples batch accepted");
// The limits' defaults are Limits' (server.h); over a limit a request is
// RESOURCE_EXHAUSTED naming it and stores nothing.
ABSL_FLAG(int64_t, max_samples_per_device, latpred::service::Limits().max_samples_per_device,
          "most samples one device may hold in one space; a SubmitSamples batch that would "
          "pass it is refused whole (with `partial` too), a sample that replaces a stored "
          "one's architecture adds none");
ABSL_FLAG(int, max_labels, latpred::service::Limits().max_labels,
          "most labels RegisterDevice accepts for one device");
ABSL_FLAG(int, max_label_length, latpred::service::Limits().max_label_length,
          "most bytes of a label's key, and of its value");
ABSL_FLAG(int, max_features, latpred::service::Limits().max_features,
          "most descriptor features RegisterDevice accepts for one device");
ABSL_FLAG(std::string, adapt_off, "",
          "comma-separated adaptation parts to switch off (embedding, additive, "
          "additive_costs, source_additive); default: every part, as measured in "
          "bench/README.md");
ABSL_FLAG(int, max_fit_samples, latpred::service::Limits().max_fit_samples,
          "most samples one AdaptDevice fit uses (a fit's time grows with its samples); a "
          "device with more is fit on a uniform subset fixed by a hash of each "
          "architecture: the same on every replica and run, and one more sample changes it "
          "by at most one (not the most recent samples: the store keeps no submission "
          "times, and the last SuggestSamples rounds cluster where the model was least "
          "sure); FitStats.samples says how many a fit used");
ABSL_FLAG(int, threads, 0, "threads for training and inference (0: all cores)");
ABSL_FLAG(int, epochs, 40, "training epochs of the base models");
ABSL_FLAG(uint64_t, seed, 1, "random seed for training");

namespace {

// Write end of the self-pipe that SIGINT/SIGTERM handlers signal. A handler, not
// sigwait: OpenBLAS starts threads before main() with every signal unblocked, so a
// blocked-signal mask in main cannot keep the default action from ending the process.
int g_signal_pipe = -1;

void OnSignal(int signal) {
  const char byte = static_cast<char>(signal);
  if (write(g_signal_pipe, &byte, 1) < 0) {
    // Nothing safe to do in a handler; the next signal tries again.
  }
}

// Accepts --data-dir as well as --data_dir: absl flag names use underscores.
void NormaliseFlagNames(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--", 2) != 0) continue;
    for (char* p = argv[i] + 2; *p != '\0' && *p != '='; ++p) {
      if (*p == '-') *p = '_';
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles unless told
  // not to; gRPC locks absl::Mutex on every call (2-4% of the server's time at batch 1).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "few-shot latency prediction for neural networks over gRPC.\n"
      "On first start it imports the bundled measurements into the store and trains the\n"
      "base models (progress on stderr); later starts load them. grpc.health.v1 reports\n"
      "SERVING once the models are ready.\n\n"
      "  latpred-server --listen 127.0.0.1:50051 --data-dir ~/.local/share/latpred\n"
      "Flags may be spelled with - or _ (--data-dir, --data_dir).");
  // --help lists the flags of this file (Abseil's default looks for a file named
  // after the binary, which latpred-server's main.cc is not).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  NormaliseFlagNames(argc, argv);
  absl::ParseCommandLine(argc, argv);

  int signal_pipe[2];
  if (pipe(signal_pipe) != 0) {
    std::perror("latpred-server: pipe");
    return 1;
  }
  g_signal_pipe = signal_pipe[1];
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  latpred::service::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.store_uri = absl::GetFlag(FLAGS_store);
  if (const char* env = std::getenv("LATPRED_STORE"); options.store_uri.empty() && env != nullptr) {
    options.store_uri = env;
  }
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.bundled_data_dir = absl::GetFlag(FLAGS_bundled_data);
  for (absl::string_view d : absl::StrSplit(absl::GetFlag(FLAGS_exclude_devices), ',', absl::SkipEmpty())) {
    options.exclude_devices.insert(std::string(d));
  }
  options.max_batch = absl::GetFlag(FLAGS_max_batch);
  options.limits.max_samples_per_device = absl::GetFlag(FLAGS_max_samples_per_device);
  options.limits.max_labels = absl::GetFlag(FLAGS_max_labels);
  options.limits.max_label_length = absl::GetFlag(FLAGS_max_label_length);
  options.limits.max_features = absl::GetFlag(FLAGS_max_features);
  options.limits.max_fit_samples = absl::GetFlag(FLAGS_max_fit_samples);
  if (absl::Status s = latpred::predictor::DisableParts(absl::GetFlag(FLAGS_adapt_off),
                                                        &options.adapt);
      !s.ok()) {
    std::cerr << "latpred-server: --adapt-off: " << s.message() << std::endl;
    return 1;
  }
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.token_for_reads = absl::GetFlag(FLAGS_token_for_reads);
  if (const std::string file = absl::GetFlag(FLAGS_token_file); !file.empty()) {
    std::ifstream in(file);
    std::getline(in, options.token);
    while (!options.token.empty() && std::isspace(static_cast<unsigned char>(options.token.back()))) {
      options.token.pop_back();
    }
    if (options.token.empty()) {
      std::cerr << "latpred-server: --token-file " << file << " is unreadable or empty" << std::endl;
      return 1;
    }
  } else if (const char* token = std::getenv("LATPRED_TOKEN"); token != nullptr) {
    options.token = token;
  }
  options.sync_interval_ms = absl::GetFlag(FLAGS_sync_interval_ms);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.train.epochs = absl::GetFlag(FLAGS_epochs);
  options.train.seed = absl::GetFlag(FLAGS_seed);

  auto server = latpred::service::Server::Create(options);
  if (!server.ok()) {
    std::cerr << "latpred-server: " << server.status().message() << std::endl;
    return 1;
  }
  std::printf("latpred-server listening on port %d\n", (*server)->port());
  if ((*server)->metrics_port() >= 0) {
    std::printf("latpred-server metrics on port %d\n", (*server)->metrics_port());
  }
  std::fflush(stdout);

  std::thread signal_waiter([&] {
    char signal = 0;
    while (read(signal_pipe[0], &signal, 1) < 0 && errno == EINTR) {
    }
    std::cerr << "latpred-server: shutting down (signal " << static_cast<int>(signal) << ")"
              << std::endl;
    (*server)->Shutdown();
  });
  absl::Status ready = (*server)->WaitUntilReady();
  if (!ready.ok()) {
    if (!absl::IsCancelled(ready)) {
      std::cerr << "latpred-server: cannot prepare models: " << ready.message() << std::endl;
      std::_Exit(1);
    }
  } else {
    std::cerr << "latpred-server: ready, serving" << std::endl;
  }
  (*server)->Wait();
  signal_waiter.join();
  return 0;
}
