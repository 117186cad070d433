// latpred-agent onboard: describe, register, measure suggested samples, submit,
// adapt, and check predictions against fresh measurements. Measurements go to a
// local spool file as they are made, so a restarted onboarding does not measure
// them again.
#ifndef LATPRED_AGENT_ONBOARD_H_
#define LATPRED_AGENT_ONBOARD_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/measure.h"

namespace latpred::agent {

struct OnboardOptions {
  std::string server;  // HOST:PORT
  std::string ca_file;  // PEM CA of a TLS server ("" = plaintext)
  std::string name;    // device name ("" = hostname + "-" + device)
  std::string space = "nb201";
  int samples = 20;
  int check = 5;
  std::string spool;          // "" = default path
  bool quick = false;         // quick describe
  int max_attempts = 10;      // per RPC, on UNAVAILABLE (exponential backoff)
  double wait_seconds = 120;  // for the server to be SERVING
  uint64_t seed = 1;          // of the random check architectures
  MeasureOptions measure;
};

// Spool file: CSV "arch,latency_ms,spread_ms,runs,role" with canonical archs;
// role is "sample" (a suggested sample) or "check". Rows are appended (and
// fsynced) one by one.
struct Spool {
  std::map<std::string, Measurement> measurements;
  std::vector<std::string> samples;  // archs with role "sample", in file order
};
absl::StatusOr<Spool> LoadSpool(const std::string& path);
absl::Status AppendSpool(const std::string& path, const std::string& arch, const Measurement& m,
                         const std::string& role);
std::string DefaultSpoolPath(const std::string& name, const std::string& space);
std::string DefaultDeviceName(const std::string& device);

// Runs the whole onboarding; results on stdout, progress on stderr.
absl::Status Onboard(const OnboardOptions& options);

}  // namespace latpred::agent

#endif  // LATPRED_AGENT_ONBOARD_H_
