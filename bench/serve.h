// latpred-bench serve: serving throughput against a running server, with the
// in-process limit measured in the same run.
#ifndef LATPRED_BENCH_SERVE_H_
#define LATPRED_BENCH_SERVE_H_

namespace latpred::bench {

// Runs the serving benchmark with the arguments after "serve"; returns the exit code.
int RunServeBench(int argc, char** argv);

}  // namespace latpred::bench

#endif  // LATPRED_BENCH_SERVE_H_
