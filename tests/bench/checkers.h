// Small syntax checkers for the benchmark's outputs, so that the tests need no JSON or
// XML library: a strict JSON validator and an XML well-formedness checker (elements
// balanced, attributes quoted and unique, entities known, one root element).
#ifndef LATPRED_TESTS_BENCH_CHECKERS_H_
#define LATPRED_TESTS_BENCH_CHECKERS_H_

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace latpred::bench::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Returns "" when text is one valid JSON value, else what is wrong and where.
class JsonChecker {
 public:
  static std::string Check(const std::string& text) {
    JsonChecker c(text);
    c.Ws();
    if (!c.Value()) return c.Error();
    c.Ws();
    if (c.pos_ != text.size()) return c.Fail("trailing characters"), c.Error();
    return "";
  }

 private:
  explicit JsonChecker(const std::string& t) : t_(t) {}
  bool Fail(const std::string& why) {
    if (why_.empty()) why_ = why + " at offset " + std::to_string(pos_);
    return false;
  }
  std::string Error() const { return why_.empty() ? "invalid JSON" : why_; }
  void Ws() {
    while (pos_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[pos_]))) ++pos_;
  }
  bool Lit(const char* word) {
    const std::string w(word);
    if (t_.compare(pos_, w.size(), w) != 0) return Fail("bad literal");
    pos_ += w.size();
    return true;
  }
  bool String() {
    if (t_[pos_] != '"') return Fail("expected string");
    ++pos_;
    while (pos_ < t_.size()) {
      const unsigned char c = t_[pos_++];
      if (c == '"') return true;
      if (c < 0x20) return Fail("control character in string");
      if (c == '\\') {
        if (pos_ >= t_.size()) break;
        const char e = t_[pos_++];
        if (e == 'u') {
          for (int i = 0; i < 4; ++i) {
            if (pos_ >= t_.size() || !std::isxdigit(static_cast<unsigned char>(t_[pos_++]))) {
              return Fail("bad \\u escape");
            }
          }
        } else if (std::string("\"\\/bfnrt").find(e) == std::string::npos) {
          return Fail("bad escape");
        }
      }
    }
    return Fail("unterminated string");
  }
  bool Number() {
    const size_t start = pos_;
    if (t_[pos_] == '-') ++pos_;
    if (pos_ >= t_.size() || !std::isdigit(static_cast<unsigned char>(t_[pos_]))) {
      return Fail("bad number");
    }
    if (t_[pos_] == '0') {
      ++pos_;
    } else {
      while (pos_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[pos_]))) ++pos_;
    }
    if (pos_ < t_.size() && t_[pos_] == '.') {
      ++pos_;
      if (pos_ >= t_.size() || !std::isdigit(static_cast<unsigned char>(t_[pos_]))) {
        return Fail("bad fraction");
      }
      while (pos_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[pos_]))) ++pos_;
    }
    if (pos_ < t_.size() && (t_[pos_] == 'e' || t_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < t_.size() && (t_[pos_] == '+' || t_[pos_] == '-')) ++pos_;
      if (pos_ >= t_.size() || !std::isdigit(static_cast<unsigned char>(t_[pos_]))) {
        return Fail("bad exponent");
      }
      while (pos_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[pos_]))) ++pos_;
    }
    return pos_ > start;
  }
  bool Value() {
    if (++depth_ > 200) return Fail("nesting too deep");
    Ws();
    if (pos_ >= t_.size()) return Fail("unexpected end");
    bool ok = false;
    const char c = t_[pos_];
    if (c == '{') {
      ++pos_;
      Ws();
      if (pos_ < t_.size() && t_[pos_] == '}') {
        ++pos_;
        ok = true;
      } else {
        while (true) {
          Ws();
          if (pos_ >= t_.size() || !String()) return Fail("expected key");
          Ws();
          if (pos_ >= t_.size() || t_[pos_] != ':') return Fail("expected ':'");
          ++pos_;
          if (!Value()) return false;
          Ws();
          if (pos_ < t_.size() && t_[pos_] == ',') {
            ++pos_;
            continue;
          }
          if (pos_ < t_.size() && t_[pos_] == '}') {
            ++pos_;
            ok = true;
            break;
          }
          return Fail("expected ',' or '}'");
        }
      }
    } else if (c == '[') {
      ++pos_;
      Ws();
      if (pos_ < t_.size() && t_[pos_] == ']') {
        ++pos_;
        ok = true;
      } else {
        while (true) {
          if (!Value()) return false;
          Ws();
          if (pos_ < t_.size() && t_[pos_] == ',') {
            ++pos_;
            continue;
          }
          if (pos_ < t_.size() && t_[pos_] == ']') {
            ++pos_;
            ok = true;
            break;
          }
          return Fail("expected ',' or ']'");
        }
      }
    } else if (c == '"') {
      ok = String();
    } else if (c == 't') {
      ok = Lit("true");
    } else if (c == 'f') {
      ok = Lit("false");
    } else if (c == 'n') {
      ok = Lit("null");
    } else {
      ok = Number();
    }
    --depth_;
    return ok;
  }

  const std::string& t_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::string why_;
};

// Returns "" when text is a well-formed XML document, else what is wrong and where.
inline std::string CheckXml(const std::string& t) {
  std::vector<std::string> stack;
  int roots = 0;
  size_t i = 0;
  auto where = [&](size_t p) { return " at offset " + std::to_string(p); };
  auto check_text = [&](size_t from, size_t to) -> std::string {
    for (size_t p = from; p < to; ++p) {
      if (t[p] == '<') return "stray '<'" + where(p);
      if (t[p] == '&') {
        size_t semi = t.find(';', p);
        if (semi == std::string::npos || semi > to) return "unterminated entity" + where(p);
        const std::string ent = t.substr(p + 1, semi - p - 1);
        static const std::set<std::string> known = {"amp", "lt", "gt", "quot", "apos"};
        if (!known.count(ent) && !(ent.size() > 1 && ent[0] == '#')) {
          return "unknown entity &" + ent + ";" + where(p);
        }
      }
    }
    return "";
  };
  auto is_name = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ':' ||
           c == '.';
  };
  while (i < t.size()) {
    size_t lt = t.find('<', i);
    const size_t text_end = lt == std::string::npos ? t.size() : lt;
    std::string err = check_text(i, text_end);
    if (!err.empty()) return err;
    if (stack.empty()) {
      for (size_t p = i; p < text_end; ++p) {
        if (!std::isspace(static_cast<unsigned char>(t[p]))) return "text outside root" + where(p);
      }
    }
    if (lt == std::string::npos) break;
    if (t.compare(lt, 5, "<?xml") == 0) {
      if (lt != 0) return "XML declaration not at the start";
      size_t end = t.find("?>", lt);
      if (end == std::string::npos) return "unterminated declaration";
      i = end + 2;
      continue;
    }
    if (t.compare(lt, 4, "<!--") == 0) {
      size_t end = t.find("-->", lt);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    size_t gt = t.find('>', lt);
    if (gt == std::string::npos) return "unterminated tag" + where(lt);
    std::string tag = t.substr(lt + 1, gt - lt - 1);
    if (!tag.empty() && tag[0] == '/') {
      std::string name = tag.substr(1);
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
      if (stack.empty() || stack.back() != name) {
        return "closing </" + name + "> does not match" + where(lt);
      }
      stack.pop_back();
      i = gt + 1;
      continue;
    }
    bool self_closing = !tag.empty() && tag.back() == '/';
    if (self_closing) tag.pop_back();
    size_t p = 0;
    while (p < tag.size() && is_name(tag[p])) ++p;
    const std::string name = tag.substr(0, p);
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) {
      return "bad element name" + where(lt);
    }
    std::set<std::string> attrs;
    while (true) {
      while (p < tag.size() && std::isspace(static_cast<unsigned char>(tag[p]))) ++p;
      if (p >= tag.size()) break;
      size_t a = p;
      while (p < tag.size() && is_name(tag[p])) ++p;
      if (p == a) return "bad attribute in <" + name + ">" + where(lt);
      const std::string attr = tag.substr(a, p - a);
      if (!attrs.insert(attr).second) return "duplicate attribute " + attr + where(lt);
      if (p >= tag.size() || tag[p] != '=') return "attribute " + attr + " has no value" + where(lt);
      ++p;
      if (p >= tag.size() || (tag[p] != '"' && tag[p] != '\'')) {
        return "attribute " + attr + " is not quoted" + where(lt);
      }
      const char q = tag[p++];
      size_t close = tag.find(q, p);
      if (close == std::string::npos) return "unterminated attribute " + attr + where(lt);
      const std::string value = tag.substr(p, close - p);
      if (value.find('<') != std::string::npos) return "'<' in attribute " + attr + where(lt);
      std::string verr = check_text(lt + 1 + p, lt + 1 + close);
      if (!verr.empty()) return verr;
      p = close + 1;
    }
    if (stack.empty()) {
      if (++roots > 1) return "more than one root element" + where(lt);
    }
    if (!self_closing) stack.push_back(name);
    i = gt + 1;
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  if (roots != 1) return "no root element";
  return "";
}

// Also parses the file with python3's xml.etree when python3 is on PATH: 0 ok, 1 parse
// error, -1 no python3.
inline int PythonXmlCheck(const std::string& path) {
  if (std::system("command -v python3 >/dev/null 2>&1") != 0) return -1;
  const std::string cmd =
      "python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' '" + path +
      "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0 ? 0 : 1;
}

// A CSV file as rows of fields (no quoted commas in the benchmark's numeric files, but
// quotes are handled).
inline std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
    } else if (c == '\n') {
      row.push_back(field);
      field.clear();
      rows.push_back(row);
      row.clear();
    } else {
      field += c;
    }
  }
  if (!field.empty() || !row.empty()) {
    row.push_back(field);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace latpred::bench::testing

#endif  // LATPRED_TESTS_BENCH_CHECKERS_H_
