// HMAC redaction of audit entries (see redact.h).
#include "audit/redact.h"

#include <array>

#include "crypto/encoding.h"
#include "crypto/mac.h"

namespace coffer::audit {
namespace {

// Positions left in clear: routing facts, identity an operator needs to read directly, outcome.
// Everything else (tokens, accessors, request and response data) is HMAC'd.
constexpr std::array<std::string_view, 26> kAllowList = {
    "/time", "/type", "/error",
    "/request/id", "/request/operation", "/request/path", "/request/mount_point", "/request/mount_type",
    "/request/remote_address", "/request/remote_port", "/request/client_certificate_sha256",
    "/request/namespace/id",
    "/auth/display_name", "/auth/policies/*", "/auth/token_policies/*", "/auth/token_type",
    "/auth/token_ttl", "/auth/token_issue_time", "/auth/metadata/cert_name", "/auth/metadata/common_name",
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

}  // namespace

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
