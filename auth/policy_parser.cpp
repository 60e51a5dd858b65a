// Parsing of Vault ACL policy text: a small hand-written lexer and parser for the HCL subset
// Vault policies use, and the JSON form (through nlohmann). Both are turned into one value tree
// (with line numbers for HCL) and interpreted by the same code, so HCL and JSON policies cannot
// drift apart. Accepted keys are Vault's (vault/policy.go parsePaths); keys Vault would reject
// are rejected here too, and Enterprise-only keys that restrict access (mfa_methods,
// control_group) are refused rather than silently ignored, because ignoring them would grant
// more than the author meant.
#include <algorithm>
#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "common/duration.h"
#include "auth/policy.h"

namespace coffer::auth {
namespace {

constexpr int kMaxDepth = 32;  // nesting bound: policies are admin input, but never recurse unbounded

struct Value {
  enum class Kind { null, string, number, boolean, list, object } kind = Kind::null;
  std::string str;  // string contents
  double num = 0;
  bool boolean = false;
  std::vector<Value> items;
  std::vector<std::pair<std::string, Value>> members;  // duplicates kept: `path` repeats
  int line = 0;  // 0 when unknown (JSON)
};

std::string at_line(int line) { return line > 0 ? "line " + std::to_string(line) + ": " : ""; }

Status fail(int line, const std::string& message) {
  return Error(Code::invalid_argument, "failed to parse policy: " + at_line(line) + message);
}

// ---------------------------------------------------------------------------------------------
// HCL lexer

enum class Tok { string, ident, number, lbrace, rbrace, lbracket, rbracket, equals, colon, comma, eof };

struct Token {
  Tok kind = Tok::eof;
  std::string text;
  int line = 1;
};

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  Result<std::vector<Token>> run() {
    std::vector<Token> out;
    while (true) {
      COFFER_RETURN_IF_ERROR(skip_space_and_comments());
      if (pos_ >= src_.size()) break;
      const char c = src_[pos_];
      Token t;
      t.line = line_;
      switch (c) {
        case '{': t.kind = Tok::lbrace; ++pos_; break;
        case '}': t.kind = Tok::rbrace; ++pos_; break;
        case '[': t.kind = Tok::lbracket; ++pos_; break;
        case ']': t.kind = Tok::rbracket; ++pos_; break;
        case '=': t.kind = Tok::equals; ++pos_; break;
        case ':': t.kind = Tok::colon; ++pos_; break;
        case ',': t.kind = Tok::comma; ++pos_; break;
        case '"': {
          t.kind = Tok::string;
          COFFER_ASSIGN_OR_RETURN(t.text, read_string());
          break;
        }
        default:
          if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.') {
            t.kind = Tok::number;
            while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) ||
                                          src_[pos_] == '.' || src_[pos_] == '-' || src_[pos_] == '+')) {
              t.text += src_[pos_++];
            }
          } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            t.kind = Tok::ident;
            while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) ||
                                          src_[pos_] == '_' || src_[pos_] == '-' || src_[pos_] == '.')) {
              t.text += src_[pos_++];
            }
          } else if (c == '<' && src_.substr(pos_, 2) == "<<") {
            return fail(line_, "heredoc strings are not supported in policies");
          } else {
            return fail(line_, std::string("unexpected character '") + c + "'");
          }
      }
      out.push_back(std::move(t));
    }
    Token eof;
    eof.line = line_;
    out.push_back(eof);
    return out;
  }

 private:
  Status skip_space_and_comments() {
    while (pos_ < src_.size()) {
      const char c = src_[pos_];
      if (c == '\n') {
        ++line_;
        ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else if (c == '#' || src_.substr(pos_, 2) == "//") {
        while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
      } else if (src_.substr(pos_, 2) == "/*") {
        const int start = line_;
        pos_ += 2;
        while (pos_ < src_.size() && src_.substr(pos_, 2) != "*/") {
          if (src_[pos_] == '\n') ++line_;
          ++pos_;
        }
        if (pos_ >= src_.size()) return fail(start, "unterminated /* comment");
        pos_ += 2;
      } else {
        break;
      }
    }
    return Status::Ok();
  }

  Result<std::string> read_string() {
    const int start = line_;
    ++pos_;  // opening quote
    std::string s;
    while (true) {
      if (pos_ >= src_.size() || src_[pos_] == '\n') return fail(start, "unterminated string");
      const char c = src_[pos_++];
      if (c == '"') return s;
      if (c != '\\') {
        s += c;
        continue;
      }
      if (pos_ >= src_.size()) return fail(start, "unterminated string");
      const char e = src_[pos_++];
      switch (e) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'n': s += '\n'; break;
        case 't': s += '\t'; break;
        case 'r': s += '\r'; break;
        default: return fail(line_, std::string("unknown escape \\") + e + " in string");
      }
    }
  }

  std::string_view src_;
  std::size_t pos_ = 0;
  int line_ = 1;
};

// ---------------------------------------------------------------------------------------------
// HCL parser: a body is a list of `key [label...] (= value | { body })` entries.

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : toks_(std::move(toks)) {}

  // The top level, as an object whose members are the entries in order.
  Result<Value> parse_file() {
    COFFER_ASSIGN_OR_RETURN(Value body, parse_body(Tok::eof, 0));
    return body;
  }

 private:
  const Token& peek() const { return toks_[pos_]; }
  const Token& next() { return toks_[pos_++]; }

  Result<Value> parse_body(Tok end, int depth) {
    if (depth > kMaxDepth) return fail(peek().line, "nesting too deep");
    Value obj;
    obj.kind = Value::Kind::object;
    obj.line = peek().line;
    while (peek().kind != end) {
      const Token& key = next();
      if (key.kind != Tok::ident && key.kind != Tok::string) {
        return fail(key.line, "expected a key, found " + describe(key));
      }
      std::vector<std::string> labels;
      while (peek().kind == Tok::string) labels.push_back(next().text);
      Value v;
      if (peek().kind == Tok::equals || peek().kind == Tok::colon) {
        next();
        COFFER_ASSIGN_OR_RETURN(v, parse_value(depth + 1));
      } else if (peek().kind == Tok::lbrace) {
        COFFER_ASSIGN_OR_RETURN(v, parse_value(depth + 1));
      } else {
        return fail(peek().line, "expected '=' or '{' after \"" + key.text + "\", found " +
                                     describe(peek()));
      }
      if (!labels.empty() && v.kind != Value::Kind::object) {
        return fail(key.line, "a labelled block needs '{'");
      }
      // `path "a" { ... }` is the object {"a": {...}} under the key "path".
      for (auto it = labels.rbegin(); it != labels.rend(); ++it) {
        Value wrapper;
        wrapper.kind = Value::Kind::object;
        wrapper.line = key.line;
        wrapper.members.emplace_back(*it, std::move(v));
        v = std::move(wrapper);
      }
      v.line = key.line;
      obj.members.emplace_back(key.text, std::move(v));
      if (peek().kind == Tok::comma) next();
    }
    return obj;
  }

  Result<Value> parse_value(int depth) {
    if (depth > kMaxDepth) return fail(peek().line, "nesting too deep");
    const Token& t = next();
    Value v;
    v.line = t.line;
    switch (t.kind) {
      case Tok::string:
        v.kind = Value::Kind::string;
        v.str = t.text;
        return v;
      case Tok::number: {
        v.kind = Value::Kind::number;
        v.str = t.text;
        try {
          std::size_t used = 0;
          v.num = std::stod(t.text, &used);
          if (used != t.text.size()) return fail(t.line, "invalid number " + t.text);
        } catch (const std::exception&) {
          return fail(t.line, "invalid number " + t.text);
        }
        return v;
      }
      case Tok::ident:
        if (t.text == "true" || t.text == "false") {
          v.kind = Value::Kind::boolean;
          v.boolean = t.text == "true";
          return v;
        }
        return fail(t.line, "unexpected word \"" + t.text + "\" (strings must be quoted)");
      case Tok::lbracket: {
        v.kind = Value::Kind::list;
        while (peek().kind != Tok::rbracket) {
          COFFER_ASSIGN_OR_RETURN(Value item, parse_value(depth + 1));
          v.items.push_back(std::move(item));
          if (peek().kind == Tok::comma) {
            next();
          } else if (peek().kind != Tok::rbracket) {
            return fail(peek().line, "expected ',' or ']' in list, found " + describe(peek()));
          }
        }
        next();
        return v;
      }
      case Tok::lbrace: {
        COFFER_ASSIGN_OR_RETURN(Value obj, parse_body(Tok::rbrace, depth + 1));
        next();  // '}'
        obj.line = t.line;
        return obj;
      }
      default:
        return fail(t.line, "expected a value, found " + describe(t));
    }
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::string: return "\"" + t.text + "\"";
      case Tok::ident:
      case Tok::number: return t.text;
      case Tok::lbrace: return "'{'";
      case Tok::rbrace: return "'}'";
      case Tok::lbracket: return "'['";
      case Tok::rbracket: return "']'";
      case Tok::equals: return "'='";
      case Tok::colon: return "':'";
      case Tok::comma: return "','";
      case Tok::eof: return "end of input";
    }
    return "?";
  }

  std::vector<Token> toks_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------
// JSON -> Value (no line numbers: nlohmann does not keep positions per value).

Value from_json(const nlohmann::json& j) {
  Value v;
  if (j.is_string()) {
    v.kind = Value::Kind::string;
    v.str = j.get<std::string>();
  } else if (j.is_number()) {
    v.kind = Value::Kind::number;
    v.num = j.get<double>();
    v.str = j.dump();
  } else if (j.is_boolean()) {
    v.kind = Value::Kind::boolean;
    v.boolean = j.get<bool>();
  } else if (j.is_array()) {
    v.kind = Value::Kind::list;
    for (const auto& e : j) v.items.push_back(from_json(e));
  } else if (j.is_object()) {
    v.kind = Value::Kind::object;
    for (const auto& [k, e] : j.items()) v.members.emplace_back(k, from_json(e));
  }
  return v;
}

nlohmann::json to_json(const Value& v) {
  switch (v.kind) {
    case Value::Kind::null: return nullptr;
    case Value::Kind::string: return v.str;
    case Value::Kind::number:
      if (v.num == static_cast<double>(static_cast<std::int64_t>(v.num))) {
        return static_cast<std::int64_t>(v.num);
      }
      return v.num;
    case Value::Kind::boolean: return v.boolean;
    case Value::Kind::list: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& e : v.items) a.push_back(to_json(e));
      return a;
    }
    case Value::Kind::object: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& [k, e] : v.members) o[k] = to_json(e);
      return o;
    }
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Interpretation (shared by HCL and JSON)

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

Result<std::vector<std::string>> string_list(const Value& v, const std::string& where) {
  if (v.kind != Value::Kind::list) return fail(v.line, where + " must be a list of strings");
  std::vector<std::string> out;
  for (const auto& e : v.items) {
    if (e.kind != Value::Kind::string) return fail(e.line ? e.line : v.line, where + " must be a list of strings");
    out.push_back(e.str);
  }
  return out;
}

Result<nlohmann::json> parameter_map(const Value& v, const std::string& where) {
  if (v.kind != Value::Kind::object) return fail(v.line, where + " must be a map of parameter lists");
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, e] : v.members) {
    if (e.kind != Value::Kind::list) {
      return fail(e.line ? e.line : v.line, where + " \"" + k + "\" must be a list");
    }
    out[lower(k)] = to_json(e);
  }
  return out;
}

Result<PathRule> interpret_block(std::string pattern, const Value& block, int line) {
  const std::string where = "path \"" + pattern + "\"";
  if (!pattern.empty() && pattern.front() == '/') pattern.erase(0, 1);
  if (Status s = validate_pattern(pattern); !s.ok()) return fail(line, where + ": " + s.message());
  if (block.kind != Value::Kind::object) return fail(line, where + ": expected a block");

  PathRule rule;
  rule.pattern = pattern;
  rule.line = line;
  std::vector<std::string> seen;
  std::vector<std::string> caps;
  std::vector<int> cap_lines;
  for (const auto& [key, v] : block.members) {
    const int kline = v.line ? v.line : line;
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      return fail(kline, where + ": duplicate key \"" + key + "\"");
    }
    seen.push_back(key);
    if (key == "capabilities") {
      COFFER_ASSIGN_OR_RETURN(caps, string_list(v, where + ": capabilities"));
      for (const auto& e : v.items) cap_lines.push_back(e.line ? e.line : kline);
    } else if (key == "policy") {
      // Pre-0.5 Vault syntax, still accepted by Vault: mapped exactly as vault/policy.go does.
      if (v.kind != Value::Kind::string) return fail(kline, where + ": policy must be a string");
      std::vector<std::string> mapped;
      if (v.str == "deny") mapped = {"deny"};
      else if (v.str == "read") mapped = {"read", "list"};
      else if (v.str == "write") mapped = {"create", "read", "update", "delete", "list"};
      else if (v.str == "sudo") mapped = {"create", "read", "update", "delete", "list", "sudo"};
      else return fail(kline, where + ": invalid policy \"" + v.str + "\"");
      for (auto& m : mapped) {
        caps.push_back(std::move(m));
        cap_lines.push_back(kline);
      }
    } else if (key == "comment") {
      // Documentation only.
    } else if (key == "min_wrapping_ttl" || key == "max_wrapping_ttl") {
      if (v.kind != Value::Kind::string && v.kind != Value::Kind::number) {
        return fail(kline, where + ": " + key + " must be a duration");
      }
      auto d = v.kind == Value::Kind::string ? parse_duration(v.str)
                                             : parse_duration_value(nlohmann::json(v.num));
      if (!d.ok()) return fail(kline, where + ": error parsing " + key + ": " + d.status().message());
      (key == "min_wrapping_ttl" ? rule.min_wrapping_ttl : rule.max_wrapping_ttl) = *d;
    } else if (key == "allowed_parameters") {
      COFFER_ASSIGN_OR_RETURN(rule.allowed_parameters, parameter_map(v, where + ": allowed_parameters"));
    } else if (key == "denied_parameters") {
      COFFER_ASSIGN_OR_RETURN(rule.denied_parameters, parameter_map(v, where + ": denied_parameters"));
    } else if (key == "required_parameters") {
      COFFER_ASSIGN_OR_RETURN(auto req, string_list(v, where + ": required_parameters"));
      for (auto& r : req) rule.required_parameters.push_back(lower(std::move(r)));
    } else if (key == "subscribe_event_types") {
      // Grants event subscriptions, which coffer does not serve: ignoring it grants nothing.
      COFFER_ASSIGN_OR_RETURN(auto ignored, string_list(v, where + ": subscribe_event_types"));
      (void)ignored;
    } else if (key == "mfa_methods" || key == "control_group") {
      return fail(kline, where + ": \"" + key + "\" (Vault Enterprise) is not supported by coffer");
    } else {
      return fail(kline, where + ": invalid key \"" + key + "\"");
    }
  }

  for (std::size_t i = 0; i < caps.size(); ++i) {
    auto c = parse_capability(caps[i]);
    if (!c) return fail(cap_lines[i], where + ": invalid capability \"" + caps[i] + "\"");
    rule.capabilities.add(*c);
  }
  if (rule.capabilities.denied()) {
    // As Vault: an explicit deny keeps nothing else from the block.
    PathRule deny;
    deny.pattern = rule.pattern;
    deny.line = rule.line;
    deny.capabilities = Capabilities::of({Capability::deny});
    return deny;
  }
  if (rule.min_wrapping_ttl != 0 && rule.max_wrapping_ttl != 0 &&
      rule.max_wrapping_ttl < rule.min_wrapping_ttl) {
    return fail(line, where + ": max_wrapping_ttl cannot be less than min_wrapping_ttl");
  }
  return rule;
}

Result<Policy> interpret(std::string_view name, const Value& top) {
  Policy policy;
  policy.name = std::string(name);
  for (const auto& [key, v] : top.members) {
    if (key == "name") continue;  // accepted at top level by Vault; the stored name wins
    if (key != "path") return fail(v.line, "invalid key \"" + key + "\"");
    // `path` is an object of pattern -> block; JSON may also give a list of such objects.
    std::vector<const Value*> groups;
    if (v.kind == Value::Kind::object) {
      groups.push_back(&v);
    } else if (v.kind == Value::Kind::list) {
      for (const auto& e : v.items) groups.push_back(&e);
    }
    if (groups.empty() && v.kind != Value::Kind::list) {
      return fail(v.line, "\"path\" must be a block");
    }
    for (const Value* g : groups) {
      if (g->kind != Value::Kind::object) return fail(g->line, "\"path\" must be a block");
      for (const auto& [pattern, block] : g->members) {
        COFFER_ASSIGN_OR_RETURN(PathRule rule, interpret_block(pattern, block, block.line ? block.line : v.line));
        policy.rules.push_back(std::move(rule));
      }
    }
  }
  return policy;
}

// Policy text is stored and served back as JSON, so it must be valid UTF-8; say where it is not.
Status check_utf8(std::string_view text) {
  int line = 1;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') ++line;
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return fail(line, "the policy is not valid UTF-8");
    }
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= text.size()) return fail(line, "the policy is not valid UTF-8");
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return fail(line, "the policy is not valid UTF-8");
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8 either.
    const bool overlong = (n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000);
    if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return fail(line, "the policy is not valid UTF-8");
    }
    i += n + 1;
  }
  return Status::Ok();
}

}  // namespace

Status validate_pattern(std::string_view pattern) {
  if (pattern.empty()) return Error(Code::invalid_argument, "empty path pattern");
  const auto star = pattern.find('*');
  if (star != std::string_view::npos && star != pattern.size() - 1) {
    return Error(Code::invalid_argument, "'*' is only allowed as the last character");
  }
  if (pattern.find("+*") != std::string_view::npos) {
    return Error(Code::invalid_argument, "invalid use of wildcards ('+*' is forbidden)");
  }
  return Status::Ok();
}

Result<Policy> parse_policy(std::string_view name, std::string_view text) {
  COFFER_RETURN_IF_ERROR(check_utf8(text));
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i < text.size() && text[i] == '{') {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return Error(Code::invalid_argument, "failed to parse policy: invalid JSON");
    }
    return interpret(name, from_json(j));
  }
  COFFER_ASSIGN_OR_RETURN(auto tokens, Lexer(text).run());
  COFFER_ASSIGN_OR_RETURN(Value top, Parser(std::move(tokens)).parse_file());
  return interpret(name, top);
}

}  // namespace coffer::auth
