// OpenStore: picks the Store implementation from the URI's scheme.
#include "latpred/store/store.h"

#include <cctype>
#include <memory>
#include <regex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "postgres_store.h"
#include "sqlite_store.h"

namespace latpred::store {
namespace {

constexpr std::string_view kSqlitePrefix = "sqlite:";
constexpr absl::string_view kSupportedForms =
    "supported forms: a file path, \"sqlite:PATH\", \"postgresql://...\"";

// Debian's Abseil has its own string_view, which StrCat does not take from std.
absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Whether text begins with prefix.
bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Returns true when uri starts with an RFC 3986 scheme ("name:"); single letters are
// left to paths so that "C:..." style names are not mistaken for schemes.
bool HasScheme(std::string_view uri) {
  const size_t colon = uri.find(':');
  if (colon == std::string_view::npos || colon < 2) return false;
  if (!std::isalpha(static_cast<unsigned char>(uri[0]))) return false;
  for (size_t i = 1; i < colon; ++i) {
    const unsigned char c = static_cast<unsigned char>(uri[i]);
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

}  // namespace

std::string RedactStoreUri(std::string_view uri) {
  static const std::regex kUserInfo(R"((://[^:/@?]*):[^@/?]*@)");
  static const std::regex kParam(R"(([?&]password=)[^&]*)");
  return std::regex_replace(std::regex_replace(std::string(uri), kUserInfo, "$1:***@"),
                            kParam, "$1***");
}

// Dispatches on the scheme: plain paths and "sqlite:" open SQLite, "postgresql:" and
// "postgres:" open PostgreSQL, anything else is rejected.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(std::string_view uri) {
  if (uri.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("empty store URI; ", kSupportedForms));
  }
  if (StartsWith(uri, "postgresql://") || StartsWith(uri, "postgres://")) {
    return OpenPostgresStore(uri);
  }
  if (StartsWith(uri, kSqlitePrefix)) {
    const std::string_view path = uri.substr(kSqlitePrefix.size());
    if (path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "store URI \"", AbslView(uri), "\" names no file; ", kSupportedForms));
    }
    return OpenSqliteStore(path);
  }
  if (HasScheme(uri)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported store URI scheme in \"", AbslView(uri), "\"; ", kSupportedForms,
        " (prefix a path containing ':' with \"sqlite:\" or \"./\")"));
  }
  return OpenSqliteStore(uri);
}

}  // namespace latpred::store
