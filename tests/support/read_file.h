// Whole-file reads for the tests that watch a child process's log.
#ifndef LATPRED_TESTS_SUPPORT_READ_FILE_H_
#define LATPRED_TESTS_SUPPORT_READ_FILE_H_

#include <fstream>
#include <sstream>
#include <string>

namespace latpred::testing {

// The file's contents, or "" when it cannot be read (yet).
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace latpred::testing

#endif  // LATPRED_TESTS_SUPPORT_READ_FILE_H_
