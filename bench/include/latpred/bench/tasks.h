// The accuracy benchmark's tasks and the published figures it compares with
// (docs/accuracy-benchmark.md: the twelve NASFLAT tasks, train -> test).
#ifndef LATPRED_BENCH_TASKS_H_
#define LATPRED_BENCH_TASKS_H_

#include <optional>
#include <string>
#include <vector>

namespace latpred::bench {

// Spearman rho at 20 target samples, task mean over targets, as published.
struct PublishedFigures {
  double help = 0;
  double multipredict = 0;
  double nasflat = 0;
};

// The number of target samples the published figures were reported at.
inline constexpr int kPublishedK = 20;

// A task: a search space, source devices (training) and target devices (few-shot).
struct TaskSpec {
  std::string name;   // "ND", "NA", ..., or "custom"
  std::string space;  // "nb201" or "fbnet"
  std::vector<std::string> sources;
  std::vector<std::string> targets;
  std::optional<PublishedFigures> published;  // absent for custom tasks
};

// The twelve tasks in the documented order: ND NA N1 N2 N3 N4 FD FA F1 F2 F3 F4.
const std::vector<TaskSpec>& StandardTasks();

// The standard task called name (case-insensitive), or nullptr.
const TaskSpec* FindTask(const std::string& name);

// Source-device budget per trial: architectures drawn per source device.
int SourceBudget(const std::string& space);  // 512 for nb201, 800 for fbnet

}  // namespace latpred::bench

#endif  // LATPRED_BENCH_TASKS_H_
