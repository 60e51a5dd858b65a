// HMAC redaction of audit entries (see redact.h).
#include "audit/redact.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <functional>

#include "crypto/encoding.h"
#include "crypto/mac.h"

namespace coffer::audit {
namespace {

// Positions left in clear: routing facts, identity an operator needs to read directly, outcome.
// Everything else (tokens, accessors, request and response data) is HMAC'd.
constexpr std::array<std::string_view, 28> kAllowList = {
    "/time", "/type", "/error",
    "/request/id", "/request/operation", "/request/path", "/request/mount_point", "/request/mount_type",
    "/request/remote_address", "/request/remote_port", "/request/client_certificate_sha256",
    "/request/namespace/id", "/request/wrap_ttl",
    "/auth/display_name", "/auth/policies/*", "/auth/token_policies/*", "/auth/token_type",
    "/auth/token_ttl", "/auth/token_issue_time", "/auth/metadata/cert_name", "/auth/metadata/common_name",
    "/auth/metadata/role_name",
    "/auth/policy_results/allowed",
    "/response/status_code", "/response/mount_type",
    "/response/auth/policies/*", "/response/auth/token_policies/*", "/response/auth/lease_duration",
};

Status walk(const crypto::SecretBytes& key, const crypto::SecretJson& in, std::string& pointer,
            nlohmann::json& out) {
  switch (in.type()) {
    case nlohmann::json::value_t::object: {
      out = nlohmann::json::object();
      for (auto it = in.begin(); it != in.end(); ++it) {
        const auto& k = it.key();
        const std::size_t mark = pointer.size();
        pointer += "/";
        pointer.append(k.data(), k.size());
        // Keys are structure (field names), not values: kept in clear like Vault does.
        Status st = walk(key, it.value(), pointer, out[std::string(k.data(), k.size())]);
        pointer.resize(mark);
        COFFER_RETURN_IF_ERROR(st);
      }
      return Status::Ok();
    }
    case nlohmann::json::value_t::array: {
      out = nlohmann::json::array();
      const std::size_t mark = pointer.size();
      pointer += "/*";
      for (const auto& v : in) {
        nlohmann::json o;
        Status st = walk(key, v, pointer, o);
        if (!st.ok()) {
          pointer.resize(mark);
          return st;
        }
        out.push_back(std::move(o));
      }
      pointer.resize(mark);
      return Status::Ok();
    }
    case nlohmann::json::value_t::string: {
      const auto& s = in.get_ref<const crypto::SecretString&>();
      const std::string_view v(s.data(), s.size());
      if (allow_listed(pointer)) {
        out = std::string(v);
        return Status::Ok();
      }
      COFFER_ASSIGN_OR_RETURN(out, hmac_value(key, v));
      return Status::Ok();
    }
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float: {
      if (allow_listed(pointer)) {
        out = nlohmann::json::parse(in.dump());
        return Status::Ok();
      }
      const crypto::SecretString text = in.dump();
      COFFER_ASSIGN_OR_RETURN(out, hmac_value(key, std::string_view(text.data(), text.size())));
      return Status::Ok();
    }
    case nlohmann::json::value_t::boolean:
      out = in.get<bool>();
      return Status::Ok();
    default:
      out = nullptr;
      return Status::Ok();
  }
}

// Well-formed UTF-8 (Unicode 15, table 3-7: no overlong forms, no surrogates, nothing above
// U+10FFFF): the same set nlohmann's serializer accepts. Returns the length of the sequence
// starting at s[i], or 0 when it is not well-formed.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

constexpr char kHexDigits[] = "0123456789abcdef";

// `"hmac-sha256:<hex>"`, the JSON form of hmac_value().
Status append_hmac(const crypto::SecretBytes& key, std::string_view value, std::string& out) {
  COFFER_ASSIGN_OR_RETURN(auto mac, crypto::hmac_sha256(key, crypto::as_bytes(value)));
  constexpr std::string_view kPrefix = "\"hmac-sha256:";
  const std::size_t at = out.size();
  out.resize(at + kPrefix.size() + 2 * mac.size() + 1);
  char* p = out.data() + at;
  p = std::copy(kPrefix.begin(), kPrefix.end(), p);
  for (std::uint8_t byte : mac) {
    *p++ = kHexDigits[byte >> 4];
    *p++ = kHexDigits[byte & 0xf];
  }
  *p = '"';
  return Status::Ok();
}

// The position names structure (keys kept in clear anyway), never a value.
Status not_utf8(const std::string& pointer) {
  return Error(Code::invalid_argument, "audit entry field " + pointer + " is not valid UTF-8");
}

// Integers as nlohmann dumps them (plain decimal); other numbers through the library's own dump.
// The text may be a secret (a numeric PIN): the stack copy is wiped afterwards.
Status with_number_text(const crypto::SecretJson& in, const std::function<Status(std::string_view)>& fn) {
  char buf[24];
  Status st = Status::Ok();
  if (in.is_number_unsigned()) {
    const auto r = std::to_chars(buf, buf + sizeof buf, in.get<std::uint64_t>());
    st = fn(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
  } else if (in.is_number_integer()) {
    const auto r = std::to_chars(buf, buf + sizeof buf, in.get<std::int64_t>());
    st = fn(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
  } else {
    const crypto::SecretString text = in.dump();
    st = fn(std::string_view(text.data(), text.size()));
  }
  crypto::secure_wipe(buf, sizeof buf);
  return st;
}

Status text_walk(const crypto::SecretBytes& key, const crypto::SecretJson& in, std::string& pointer,
                 std::string& out) {
  switch (in.type()) {
    case nlohmann::json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (auto it = in.begin(); it != in.end(); ++it) {
        const std::string_view k(it.key().data(), it.key().size());
        if (!first) out.push_back(',');
        first = false;
        // Keys are structure (field names), not values: kept in clear like Vault does. A key
        // that is not UTF-8 is reported by the position of its object, not by its bytes.
        if (!append_json_string(out, k)) return not_utf8(pointer.empty() ? "/" : pointer);
        out.push_back(':');
        const std::size_t mark = pointer.size();
        pointer.push_back('/');
        pointer.append(k);
        Status st = text_walk(key, it.value(), pointer, out);
        pointer.resize(mark);
        COFFER_RETURN_IF_ERROR(st);
      }
      out.push_back('}');
      return Status::Ok();
    }
    case nlohmann::json::value_t::array: {
      out.push_back('[');
      const std::size_t mark = pointer.size();
      pointer += "/*";
      Status st = Status::Ok();
      bool first = true;
      for (const auto& v : in) {
        if (!first) out.push_back(',');
        first = false;
        st = text_walk(key, v, pointer, out);
        if (!st.ok()) break;
      }
      pointer.resize(mark);
      COFFER_RETURN_IF_ERROR(st);
      out.push_back(']');
      return Status::Ok();
    }
    case nlohmann::json::value_t::string: {
      const auto& s = in.get_ref<const crypto::SecretString&>();
      const std::string_view v(s.data(), s.size());
      if (!allow_listed(pointer)) return append_hmac(key, v, out);
      return append_json_string(out, v) ? Status::Ok() : not_utf8(pointer);
    }
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return with_number_text(in, [&](std::string_view text) -> Status {
        if (!allow_listed(pointer)) return append_hmac(key, text, out);
        out.append(text);
        return Status::Ok();
      });
    case nlohmann::json::value_t::boolean:
      out.append(in.get<bool>() ? "true" : "false");
      return Status::Ok();
    default:
      out.append("null");
      return Status::Ok();
  }
}

}  // namespace

bool append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    // Runs of plain printable ASCII are copied in one go.
    std::size_t j = i;
    while (j < s.size()) {
      const auto c = static_cast<unsigned char>(s[j]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++j;
    }
    out.append(s.data() + i, j - i);
    i = j;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence(s, i);
      if (n == 0) return false;
      out.append(s.data() + i, n);
      i += n;
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default: {
        const char esc[] = {'\\', 'u', '0', '0', kHexDigits[c >> 4], kHexDigits[c & 0xf]};
        out.append(esc, sizeof esc);
      }
    }
    ++i;
  }
  out.push_back('"');
  return true;
}

Status redact_to_text(const crypto::SecretBytes& key, const crypto::SecretJson& value, std::string& pointer,
                      std::string& out) {
  return text_walk(key, value, pointer, out);
}

Result<std::string> hmac_value(const crypto::SecretBytes& key, std::string_view value) {
  COFFER_ASSIGN_OR_RETURN(auto mac, crypto::hmac_sha256(key, crypto::as_bytes(value)));
  return "hmac-sha256:" + crypto::to_hex(mac);
}

bool allow_listed(std::string_view pointer) {
  for (auto a : kAllowList) {
    if (a == pointer) return true;
  }
  return false;
}

Result<nlohmann::json> redact(const crypto::SecretBytes& key, const crypto::SecretJson& entry) {
  nlohmann::json out;
  std::string pointer;
  COFFER_RETURN_IF_ERROR(walk(key, entry, pointer, out));
  return out;
}

}  // namespace coffer::audit
