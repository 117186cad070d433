#include "client/cli/args.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "latpred/core/status_macros.h"

namespace latpred::cli {
namespace {

constexpr char kUsagePayload[] = "latpred.cli/usage";

// A flag token split into its name and, for "--name=value", the value.
struct FlagToken {
  std::string name;
  std::optional<std::string> value;
};

// Whether token is a flag: starts with '-' and is neither "-" nor "--".
bool IsFlag(absl::string_view token) {
  return token.size() > 1 && token[0] == '-' && token != "--";
}

// Splits a flag token ("-k", "--device", "--device=x") into name and inline value.
FlagToken SplitFlag(absl::string_view token) {
  absl::ConsumePrefix(&token, "-");
  absl::ConsumePrefix(&token, "-");
  const size_t eq = token.find('=');
  if (eq == absl::string_view::npos) return {std::string(token), std::nullopt};
  return {std::string(token.substr(0, eq)), std::string(token.substr(eq + 1))};
}

// The spec called name, or nullptr.
const FlagSpec* FindSpec(const std::vector<FlagSpec>& specs, absl::string_view name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// Reads the flag at args[*i] and its value, leaving *i on the last token consumed.
absl::StatusOr<std::pair<std::string, std::string>> ReadFlag(
    const std::vector<std::string>& args, size_t* i, const std::vector<FlagSpec>& specs) {
  FlagToken flag = SplitFlag(args[*i]);
  const FlagSpec* spec = FindSpec(specs, flag.name);
  if (spec == nullptr) return UsageError(absl::StrCat("unknown flag '", args[*i], "'"));
  if (spec->value.empty()) {
    if (flag.value.has_value()) {
      return UsageError(absl::StrCat("--", flag.name, " takes no value"));
    }
    return std::make_pair(flag.name, std::string());
  }
  if (flag.value.has_value()) return std::make_pair(flag.name, *flag.value);
  if (*i + 1 >= args.size()) {
    return UsageError(
        absl::StrCat("--", flag.name, " needs a value (", spec->value, ")"));
  }
  ++*i;
  return std::make_pair(flag.name, args[*i]);
}

}  // namespace

absl::Status UsageError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayload, absl::Cord());
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

bool ParsedArgs::Has(const std::string& name) const { return flags.count(name) > 0; }

std::optional<std::string> ParsedArgs::Get(const std::string& name) const {
  auto it = flags.find(name);
  if (it == flags.end()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> ParsedArgs::GetAll(const std::string& name) const {
  auto it = flags.find(name);
  return it == flags.end() ? std::vector<std::string>() : it->second;
}

absl::StatusOr<size_t> FindCommand(const std::vector<std::string>& args,
                                   const std::vector<FlagSpec>& specs) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (!IsFlag(args[i])) return i;
    RETURN_IF_ERROR(ReadFlag(args, &i, specs).status());
  }
  return args.size();
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs) {
  ParsedArgs parsed;
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (!flags_ended && args[i] == "--") {
      flags_ended = true;
    } else if (flags_ended || !IsFlag(args[i])) {
      parsed.positional.push_back(args[i]);
    } else {
      ASSIGN_OR_RETURN(auto flag, ReadFlag(args, &i, specs));
      parsed.flags[flag.first].push_back(std::move(flag.second));
    }
  }
  return parsed;
}

}  // namespace latpred::cli
