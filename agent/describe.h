// latpred-agent describe: characterises the machine as a latpred device
// descriptor (CPU microbenchmarks, PAPI counters when the PMU is usable,
// reference latencies).
#ifndef LATPRED_AGENT_DESCRIBE_H_
#define LATPRED_AGENT_DESCRIBE_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/measure.h"

namespace latpred::agent {

// One descriptor feature; source is "counter", "microbenchmark" or
// "reference_latency".
struct Feature {
  std::string name;
  double value = 0;
  std::string source;
  std::string unit;
};

struct Descriptor {
  std::vector<Feature> features;
  std::map<std::string, std::string> labels;
  bool papi_available = false;
  std::string papi_reason;  // why PAPI counters are unavailable ("" when available)
  // What could not be measured, and why.
  std::vector<std::pair<std::string, std::string>> unavailable;
};

struct DescribeOptions {
  bool quick = false;      // short microbenchmarks, few runs per reference network
  bool references = true;  // measure the 10 nb201 reference architectures
  MeasureOptions measure;  // device, threads, batch for reference latencies
};

// The 10 nb201 reference architectures (rows of
// data/help/nb201_reference_archs.txt).
const std::vector<std::string>& Nb201ReferenceArchs();

// Microbenchmarks (plain C++, no torch).
double MemoryReadBandwidthGBps(size_t bytes, int passes);
double LoadLatencyNs(size_t working_set_bytes, size_t steps);

Descriptor Describe(const DescribeOptions& options);

// {"labels": {...}, "features": [{"name","value","source","unit"}...],
//  "papi": {"available": b, "reason": s}, "unavailable": [{"what","why"}...]}
std::string DescriptorToJson(const Descriptor& d);

// JSON string literal of s (with quotes).
std::string JsonString(const std::string& s);

}  // namespace latpred::agent

#endif  // LATPRED_AGENT_DESCRIBE_H_
