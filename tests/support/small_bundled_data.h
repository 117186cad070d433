// A cut-down copy of the bundled measurements (data/: help/, eagle/) for integration
// tests whose server needs base models but not good ones: with the first few hundred
// architectures of each table, a first start imports and trains in seconds, not tens of
// seconds, and the store stays small. Point the server's --bundled-data at it.
#ifndef LATPRED_TESTS_SUPPORT_SMALL_BUNDLED_DATA_H_
#define LATPRED_TESTS_SUPPORT_SMALL_BUNDLED_DATA_H_

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace latpred::testing {

// Copies every file of from/help and from/eagle into to/ (created), keeping the header
// and the first `rows` lines of each .csv.
inline absl::Status WriteSmallBundledData(const std::string& from, const std::string& to,
                                          int rows) {
  namespace fs = std::filesystem;
  for (const char* sub : {"help", "eagle"}) {
    std::error_code error;
    fs::create_directories(fs::path(to) / sub, error);
    if (error) return absl::InternalError(absl::StrCat("cannot create ", to, "/", sub));
    for (const fs::directory_entry& entry : fs::directory_iterator(fs::path(from) / sub, error)) {
      std::ifstream in(entry.path());
      std::ofstream out(fs::path(to) / sub / entry.path().filename());
      const bool table = entry.path().extension() == ".csv";
      std::string line;
      for (int n = 0; std::getline(in, line) && (!table || n <= rows); ++n) out << line << '\n';
      if (!out) return absl::InternalError(absl::StrCat("cannot write a copy of ", entry.path().string()));
    }
    if (error) return absl::NotFoundError(absl::StrCat("cannot read ", from, "/", sub));
  }
  return absl::OkStatus();
}

}  // namespace latpred::testing

#endif  // LATPRED_TESTS_SUPPORT_SMALL_BUNDLED_DATA_H_
