// Vault's role field types read from JSON bodies (see role_fields.h).
#include "auth/role_fields.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "auth/policy_store.h"
#include "common/duration.h"

namespace coffer::auth {
namespace {

using nlohmann::json;

Status bad(const std::string& message) { return Error(Code::invalid_argument, message); }

std::string quoted(const char* key) { return std::string("\"") + key + "\""; }

}  // namespace

std::string trim_space(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

Result<std::optional<std::vector<std::string>>> string_list_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::optional<std::vector<std::string>>();
  std::vector<std::string> out;
  auto add = [&out](std::string_view s) {
    std::string t = trim_space(s);
    if (!t.empty()) out.push_back(std::move(t));
  };
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    std::size_t start = 0;
    while (start <= s.size()) {
      auto comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      add(std::string_view(s).substr(start, comma - start));
      start = comma + 1;
    }
  } else if (it->is_array()) {
    for (const auto& e : *it) {
      if (!e.is_string()) return bad(quoted(key) + " must be a list of strings");
      add(e.get_ref<const std::string&>());
    }
  } else {
    return bad(quoted(key) + " must be a string or a list of strings");
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

Result<std::optional<std::int64_t>> duration_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::optional<std::int64_t>();
  auto d = parse_duration_value(*it);
  if (!d.ok()) return bad(quoted(key) + ": " + d.status().message());
  return std::optional<std::int64_t>(*d);
}

Result<std::optional<bool>> bool_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::optional<bool>();
  if (it->is_boolean()) return std::optional<bool>(it->get<bool>());
  if (it->is_number_integer()) return std::optional<bool>(it->get<std::int64_t>() != 0);
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    if (s == "true" || s == "1" || s == "t" || s == "True" || s == "TRUE") return std::optional<bool>(true);
    if (s == "false" || s == "0" || s == "f" || s == "False" || s == "FALSE" || s.empty()) {
      return std::optional<bool>(false);
    }
  }
  return bad(quoted(key) + " must be a boolean");
}

Result<std::optional<std::int64_t>> int_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::optional<std::int64_t>();
  if (it->is_number_unsigned()) {
    const auto v = it->get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(INT32_MAX)) return bad(quoted(key) + " is too large");
    return std::optional<std::int64_t>(static_cast<std::int64_t>(v));
  }
  if (it->is_number_integer()) {
    const auto v = it->get<std::int64_t>();
    if (v < INT32_MIN || v > INT32_MAX) return bad(quoted(key) + " is out of range");
    return std::optional<std::int64_t>(v);
  }
  if (it->is_string()) {
    const std::string s = trim_space(it->get_ref<const std::string&>());
    if (s.empty()) return std::optional<std::int64_t>(0);
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size() && v >= INT32_MIN && v <= INT32_MAX) {
      return std::optional<std::int64_t>(v);
    }
  }
  return bad(quoted(key) + " must be a whole number");
}

Result<std::optional<std::string>> string_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return bad(quoted(key) + " must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

const char* pick_field(const json& body, const char* current, const char* legacy) {
  if (legacy == nullptr) return current;
  const bool has_current = body.contains(current) && !body[current].is_null();
  const bool has_legacy = body.contains(legacy) && !body[legacy].is_null();
  if (has_current && has_legacy) return nullptr;
  return has_legacy ? legacy : current;
}

Result<std::optional<std::vector<std::string>>> policies_field(const json& body) {
  const char* key = pick_field(body, "token_policies", "policies");
  if (!key) return bad("cannot specify both \"token_policies\" and \"policies\"");
  COFFER_ASSIGN_OR_RETURN(auto policies, string_list_field(body, key));
  if (!policies) return policies;
  std::vector<std::string> clean;
  for (const auto& p : *policies) {
    auto n = PolicyStore::normalize_name(p);
    if (!n.ok()) return bad(quoted(key) + ": " + n.status().message());
    clean.push_back(std::move(n).value());
  }
  std::sort(clean.begin(), clean.end());
  clean.erase(std::unique(clean.begin(), clean.end()), clean.end());
  return std::optional<std::vector<std::string>>(std::move(clean));
}

Status validate_role_name(std::string_view name) {
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (name.empty()) return bad("missing role name");
  if (name.size() > 128) return bad("role name is longer than 128 characters");
  if (!word(name.front()) || !word(name.back())) return bad("invalid role name \"" + std::string(name) + "\"");
  for (char c : name) {
    if (!word(c) && c != '-' && c != '.') return bad("invalid role name \"" + std::string(name) + "\"");
  }
  return Status::Ok();
}

Result<json> parse_body_text(std::string_view text) {
  if (trim_space(text).empty()) return json::object();
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) return bad("the request body must be a JSON object");
  return body;
}

}  // namespace coffer::auth
