#include "common.h"

#include <chrono>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace latpred::store {
namespace {

// Appends s to out as a JSON string literal; control characters become \u00XX.
void AppendJsonString(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20) {
      out.append("\\u00");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

// Encodes labels as a JSON object of strings, keys in map order.
// Reads a JSON object whose values are all strings (what EncodeLabelsJson writes, plus
// any valid JSON spelling of it: whitespace, every string escape, surrogate pairs).
class LabelsJsonParser {
 public:
  explicit LabelsJsonParser(std::string_view text) : text_(text) {}

  // Parses the whole text, or returns nullopt when it is not such an object.
  std::optional<std::map<std::string, std::string>> Parse() {
    std::map<std::string, std::string> labels;
    SkipSpace();
    if (!Consume('{')) return std::nullopt;
    SkipSpace();
    if (!Consume('}')) {
      while (true) {
        std::string key;
        std::string value;
        SkipSpace();
        if (!ParseString(key)) return std::nullopt;
        SkipSpace();
        if (!Consume(':')) return std::nullopt;
        SkipSpace();
        if (!ParseString(value)) return std::nullopt;
        labels[std::move(key)] = std::move(value);
        SkipSpace();
        if (Consume('}')) break;
        if (!Consume(',')) return std::nullopt;
      }
    }
    SkipSpace();
    if (pos_ != text_.size()) return std::nullopt;
    return labels;
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  // Reads four hex digits into code.
  bool ParseHex4(uint32_t& code) {
    if (text_.size() - pos_ < 4) return false;
    code = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      uint32_t digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return false;
      }
      code = code * 16 + digit;
    }
    return true;
  }

  // Reads the code point of a \u escape (the "\u" already consumed), joining a
  // surrogate pair into one code point.
  bool ParseUnicodeEscape(uint32_t& code) {
    if (!ParseHex4(code)) return false;
    if (code >= 0xDC00 && code <= 0xDFFF) return false;  // lone low surrogate
    if (code < 0xD800 || code > 0xDBFF) return true;
    uint32_t low;
    if (!Consume('\\') || !Consume('u') || !ParseHex4(low)) return false;
    if (low < 0xDC00 || low > 0xDFFF) return false;
    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    return true;
  }

  static void AppendUtf8(uint32_t code, std::string& out) {
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (code >> 18)));
      out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  // Reads a string literal, decoding its escapes into out.
  bool ParseString(std::string& out) {
    if (!Consume('"')) return false;
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return false;
      switch (text_[pos_++]) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          uint32_t code;
          if (!ParseUnicodeEscape(code)) return false;
          AppendUtf8(code, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::string EncodeLabelsJson(const std::map<std::string, std::string>& labels) {
  std::string out = "{";
  for (const auto& [key, value] : labels) {
    if (out.size() > 1) out.push_back(',');
    AppendJsonString(key, out);
    out.push_back(':');
    AppendJsonString(value, out);
  }
  out.push_back('}');
  return out;
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status ValidateDevice(const Device& device) {
  if (device.name.empty()) return absl::InvalidArgumentError("device name is empty");
  std::set<std::string_view> names;
  for (const DescriptorFeature& feature : device.descriptor) {
    if (!names.insert(feature.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("device \"", device.name, "\": duplicate descriptor feature \"",
                       feature.name, "\""));
    }
    if (!std::isfinite(feature.value)) {
      return absl::InvalidArgumentError(absl::StrCat("device \"", device.name,
                                                     "\": descriptor feature \"",
                                                     feature.name, "\" is not finite"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSamples(const std::vector<Sample>& samples) {
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!std::isfinite(samples[i].latency_ms) || !std::isfinite(samples[i].spread_ms)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample ", i, " (", samples[i].arch, ") has a non-finite latency or spread"));
    }
  }
  return absl::OkStatus();
}

absl::Status DeviceNotFound(std::string_view name) {
  return absl::NotFoundError(absl::StrCat("device \"", AbslView(name), "\" not found"));
}

std::optional<std::map<std::string, std::string>> DecodeLabelsJson(std::string_view text) {
  return LabelsJsonParser(text).Parse();
}

}  // namespace latpred::store
