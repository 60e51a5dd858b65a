#include "daemon/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "common/duration.h"

namespace coffer::daemon {
namespace {

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  Status check_keys(const toml::table& table, const std::string& where,
                    const std::set<std::string>& known) {
    for (const auto& [key, value] : table) {
      if (known.count(std::string(key.str())) == 0) {
        return bad(where.empty() ? std::string(key.str()) : where + "." + std::string(key.str()),
                   "unknown option (see cofferd.example.toml for the valid ones)");
      }
    }
    return Status::Ok();
  }

  Status get_string(const toml::table& t, const std::string& where, const char* key, std::string& out) {
    const auto* node = t.get(key);
    if (node == nullptr) return Status::Ok();
    if (!node->is_string()) return bad(where + "." + key, "must be a string");
    out = node->as_string()->get();
    return Status::Ok();
  }

  template <typename Int>
  Status get_int(const toml::table& t, const std::string& where, const char* key, Int& out,
                 std::int64_t min, std::int64_t max) {
    const auto* node = t.get(key);
    if (node == nullptr) return Status::Ok();
    if (!node->is_integer()) return bad(where + "." + key, "must be an integer");
    const std::int64_t v = node->as_integer()->get();
    if (v < min || v > max) {
      return bad(where + "." + key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    out = static_cast<Int>(v);
    return Status::Ok();
  }

  Status get_bool(const toml::table& t, const std::string& where, const char* key, bool& out) {
    const auto* node = t.get(key);
    if (node == nullptr) return Status::Ok();
    if (!node->is_boolean()) return bad(where + "." + key, "must be true or false");
    out = node->as_boolean()->get();
    return Status::Ok();
  }

  // An integer or a floating-point number within (0, max].
  Status get_positive_number(const toml::table& t, const std::string& where, const char* key, double& out,
                             double max) {
    const auto* node = t.get(key);
    if (node == nullptr) return Status::Ok();
    double v = 0;
    if (node->is_integer()) {
      v = static_cast<double>(node->as_integer()->get());
    } else if (node->is_floating_point()) {
      v = node->as_floating_point()->get();
    } else {
      return bad(where + "." + key, "must be a number");
    }
    if (!(v > 0 && v <= max)) {  // also refuses NaN
      return bad(where + "." + key, "must be greater than 0 and at most " + std::to_string(static_cast<std::int64_t>(max)));
    }
    out = v;
    return Status::Ok();
  }

  Status get_duration(const toml::table& t, const std::string& where, const char* key,
                      std::int64_t& out, std::int64_t min) {
    const auto* node = t.get(key);
    if (node == nullptr) return Status::Ok();
    std::optional<std::int64_t> seconds;
    if (node->is_string()) {
      auto parsed = parse_duration(node->as_string()->get());
      if (parsed.ok()) seconds = *parsed;
    }
    if (node->is_integer()) seconds = node->as_integer()->get();
    if (!seconds.has_value() || *seconds < min) {
      return bad(where + "." + key, "must be a duration such as \"30s\", \"15m\" or \"24h\" (at least " +
                                        std::to_string(min) + "s)");
    }
    out = *seconds;
    return Status::Ok();
  }

  Status bad(const std::string& key, const std::string& why) const {
    return Error(Code::invalid_argument, file_ + ": " + key + ": " + why);
  }

 private:
  std::string file_;
};

const toml::table* subtable(const toml::table& t, const char* key) {
  const auto* node = t.get(key);
  return node != nullptr ? node->as_table() : nullptr;
}

// [rate_limit] with one sub-table per request class, and [lockout].
Status read_brute_force_limits(Reader& r, const toml::table& root, Config& c) {
  if (const auto* t = subtable(root, "rate_limit")) {
    COFFER_RETURN_IF_ERROR(r.check_keys(*t, "rate_limit", {"enabled", "max_buckets", "login", "read", "write"}));
    COFFER_RETURN_IF_ERROR(r.get_bool(*t, "rate_limit", "enabled", c.rate_limit.enabled));
    COFFER_RETURN_IF_ERROR(r.get_int(*t, "rate_limit", "max_buckets", c.rate_limit.max_buckets, 1024, 100000000));
    const std::pair<const char*, api::ClassLimits*> classes[] = {
        {"login", &c.rate_limit.login}, {"read", &c.rate_limit.read}, {"write", &c.rate_limit.write}};
    for (const auto& [name, limits] : classes) {
      const auto* node = t->get(name);
      if (node == nullptr) continue;
      const std::string w = std::string("rate_limit.") + name;
      const auto* k = node->as_table();
      if (k == nullptr) return r.bad(w, "must be a table ([" + w + "])");
      COFFER_RETURN_IF_ERROR(
          r.check_keys(*k, w, {"identity_rate", "identity_burst", "address_rate", "address_burst"}));
      COFFER_RETURN_IF_ERROR(r.get_positive_number(*k, w, "identity_rate", limits->identity.rate, 1e6));
      COFFER_RETURN_IF_ERROR(r.get_positive_number(*k, w, "address_rate", limits->address.rate, 1e6));
      std::int64_t identity_burst = static_cast<std::int64_t>(limits->identity.burst);
      std::int64_t address_burst = static_cast<std::int64_t>(limits->address.burst);
      COFFER_RETURN_IF_ERROR(r.get_int(*k, w, "identity_burst", identity_burst, 1, 100000000));
      COFFER_RETURN_IF_ERROR(r.get_int(*k, w, "address_burst", address_burst, 1, 100000000));
      limits->identity.burst = static_cast<double>(identity_burst);
      limits->address.burst = static_cast<double>(address_burst);
    }
  } else if (root.get("rate_limit") != nullptr) {
    return r.bad("rate_limit", "must be a table ([rate_limit])");
  }

  if (const auto* t = subtable(root, "lockout")) {
    COFFER_RETURN_IF_ERROR(r.check_keys(*t, "lockout", {"enabled", "threshold", "duration", "counter_reset"}));
    auto& L = c.lockout;
    COFFER_RETURN_IF_ERROR(r.get_bool(*t, "lockout", "enabled", L.enabled));
    COFFER_RETURN_IF_ERROR(r.get_int(*t, "lockout", "threshold", L.threshold, 1, 1000000));
    COFFER_RETURN_IF_ERROR(r.get_duration(*t, "lockout", "duration", L.duration_seconds, 1));
    COFFER_RETURN_IF_ERROR(r.get_duration(*t, "lockout", "counter_reset", L.counter_reset_seconds, 1));
    // Beyond a year is a typo, and the nanosecond arithmetic must not overflow.
    constexpr std::int64_t kYear = 366 * 24 * 3600;
    if (L.duration_seconds > kYear) return r.bad("lockout.duration", "must be at most 366 days");
    if (L.counter_reset_seconds > kYear) return r.bad("lockout.counter_reset", "must be at most 366 days");
  } else if (root.get("lockout") != nullptr) {
    return r.bad("lockout", "must be a table ([lockout])");
  }
  return Status::Ok();
}

}  // namespace

Result<Config> load_config(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Error(Code::not_found, "configuration file " + path + " does not exist");
  }
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
        << e.description();
    return Error(Code::invalid_argument, msg.str());
  }

  Config c;
  c.source_path = path;
  Reader r(path);
  COFFER_RETURN_IF_ERROR(r.check_keys(root, "", {"listener", "storage", "protector", "tokens", "log", "audit",
                                                  "rate_limit", "lockout", "api"}));
  for (const char* section : {"listener", "storage", "protector", "tokens", "log", "audit", "api"}) {
    if (root.get(section) != nullptr && subtable(root, section) == nullptr) {
      return r.bad(section, "must be a table ([" + std::string(section) + "])");
    }
  }

  if (const auto* l = subtable(root, "listener")) {
    COFFER_RETURN_IF_ERROR(r.check_keys(*l, "listener",
                                        {"address", "port", "tls_cert_file", "tls_key_file", "client_ca_file",
                                         "crl_file", "threads", "max_connections", "connection_timeout",
                                         "max_request_bytes", "max_path_bytes", "max_json_depth",
                                         "tls_ticket_lifetime"}));
    auto& L = c.listener;
    COFFER_RETURN_IF_ERROR(r.get_string(*l, "listener", "address", L.address));
    COFFER_RETURN_IF_ERROR(r.get_int(*l, "listener", "port", L.port, 1, 65535));
    COFFER_RETURN_IF_ERROR(r.get_string(*l, "listener", "tls_cert_file", L.cert_file));
    COFFER_RETURN_IF_ERROR(r.get_string(*l, "listener", "tls_key_file", L.key_file));
    COFFER_RETURN_IF_ERROR(r.get_string(*l, "listener", "client_ca_file", L.client_ca_file));
    COFFER_RETURN_IF_ERROR(r.get_string(*l, "listener", "crl_file", L.crl_file));
    std::int64_t timeout = L.connection_timeout_seconds;
    COFFER_RETURN_IF_ERROR(r.get_int(*l, "listener", "threads", L.threads, 0, 256));
    COFFER_RETURN_IF_ERROR(r.get_int(*l, "listener", "max_connections", L.max_connections, 1, 1000000));
    COFFER_RETURN_IF_ERROR(r.get_duration(*l, "listener", "connection_timeout", timeout, 1));
    if (timeout > 86400) return r.bad("listener.connection_timeout", "must be at most 24h");
    L.connection_timeout_seconds = static_cast<unsigned>(timeout);
    std::int64_t tickets = L.tls_ticket_lifetime_seconds;
    COFFER_RETURN_IF_ERROR(r.get_duration(*l, "listener", "tls_ticket_lifetime", tickets, 0));
    if (tickets > 86400) return r.bad("listener.tls_ticket_lifetime", "must be at most 24h (\"0s\" turns resumption off)");
    L.tls_ticket_lifetime_seconds = static_cast<unsigned>(tickets);
    COFFER_RETURN_IF_ERROR(r.get_int(*l, "listener", "max_request_bytes", L.max_request_bytes, 1024, 32 << 20));
    COFFER_RETURN_IF_ERROR(r.get_int(*l, "listener", "max_path_bytes", L.max_path_bytes, 64, 65536));
    COFFER_RETURN_IF_ERROR(r.get_int(*l, "listener", "max_json_depth", c.max_json_depth, 2, 512));
  }
  if (c.listener.cert_file.empty() || c.listener.key_file.empty() ||
      c.listener.client_ca_file.empty()) {
    return r.bad("listener", "tls_cert_file, tls_key_file and client_ca_file are required "
                             "(mutual TLS is always on)");
  }

  if (const auto* s = subtable(root, "storage")) {
    COFFER_RETURN_IF_ERROR(r.check_keys(*s, "storage", {"path"}));
    COFFER_RETURN_IF_ERROR(r.get_string(*s, "storage", "path", c.storage_path));
  }

  if (const auto* p = subtable(root, "protector")) {
    COFFER_RETURN_IF_ERROR(r.check_keys(*p, "protector", {"type", "pkcs11", "tpm"}));
    COFFER_RETURN_IF_ERROR(r.get_string(*p, "protector", "type", c.protector_type));
    if (const auto* k = subtable(*p, "pkcs11")) {
      COFFER_RETURN_IF_ERROR(r.check_keys(*k, "protector.pkcs11",
                                          {"module", "token_label", "token_uri", "key_label", "pin_credential"}));
      auto& P = c.pkcs11;
      COFFER_RETURN_IF_ERROR(r.get_string(*k, "protector.pkcs11", "module", P.module));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, "protector.pkcs11", "token_label", P.token_label));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, "protector.pkcs11", "token_uri", P.token_uri));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, "protector.pkcs11", "key_label", P.key_label));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, "protector.pkcs11", "pin_credential", c.pin_credential));
    }
    if (const auto* k = subtable(*p, "tpm")) {
      const std::string w = "protector.tpm";
      COFFER_RETURN_IF_ERROR(
          r.check_keys(*k, w, {"tcti", "pcrs", "key_blob_file", "key_id", "auth_credential",
                                "policy_public_key", "pcr_approvals_file"}));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, w, "tcti", c.tpm.tcti));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, w, "key_blob_file", c.tpm.key_blob_file));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, w, "key_id", c.tpm.key_id));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, w, "auth_credential", c.tpm_auth_credential));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, w, "policy_public_key", c.tpm_policy_public_key));
      COFFER_RETURN_IF_ERROR(r.get_string(*k, w, "pcr_approvals_file", c.tpm_pcr_approvals_file));
      if (const auto* node = k->get("pcrs")) {
        const auto* arr = node->as_array();
        if (arr == nullptr) return r.bad(w + ".pcrs", "must be an array of PCR numbers, e.g. [7]");
        c.tpm.pcrs.clear();
        for (const auto& item : *arr) {
          const auto* n = item.as_integer();
          if (n == nullptr || n->get() < 0 || n->get() > 23) {
            return r.bad(w + ".pcrs", "must hold PCR numbers 0..23");
          }
          c.tpm.pcrs.push_back(static_cast<std::uint32_t>(n->get()));
        }
      }
    }
  }
  if (c.protector_type != "pkcs11" && c.protector_type != "tpm") {
    return r.bad("protector.type", "\"" + c.protector_type + "\" is not supported (supported: \"pkcs11\", \"tpm\")");
  }
  if (c.protector_type == "tpm") {
    if (c.tpm.tcti.empty()) return r.bad("protector.tpm.tcti", "must not be empty (default \"device:/dev/tpmrm0\")");
    if (c.tpm.key_blob_file.empty() || c.tpm.key_blob_file.front() != '/') {
      return r.bad("protector.tpm.key_blob_file", "must be an absolute path");
    }
    if (c.tpm.key_id.empty()) return r.bad("protector.tpm.key_id", "must not be empty");
    std::set<std::uint32_t> distinct(c.tpm.pcrs.begin(), c.tpm.pcrs.end());
    if (c.tpm.pcrs.empty() || distinct.size() != c.tpm.pcrs.size()) {
      return r.bad("protector.tpm.pcrs", "must list at least one PCR, each once (e.g. [7])");
    }
    if (c.tpm_auth_credential.find('/') != std::string::npos) {
      return r.bad("protector.tpm.auth_credential", "must be a credential name (no '/')");
    }
    if (!c.tpm_policy_public_key.empty() && c.tpm_policy_public_key.front() != '/') {
      return r.bad("protector.tpm.policy_public_key", "must be an absolute path (a PEM public key)");
    }
    if (!c.tpm_pcr_approvals_file.empty() && c.tpm_pcr_approvals_file.front() != '/') {
      return r.bad("protector.tpm.pcr_approvals_file", "must be an absolute path");
    }
    if (c.tpm_policy_public_key.empty() != c.tpm_pcr_approvals_file.empty()) {
      return r.bad(c.tpm_policy_public_key.empty() ? "protector.tpm.pcr_approvals_file"
                                                   : "protector.tpm.policy_public_key",
                   "policy_public_key and pcr_approvals_file go together (signed PCR policies): set both or neither");
    }
  } else if (c.pkcs11.token_label.empty() == c.pkcs11.token_uri.empty()) {
    return r.bad("protector.pkcs11", "set exactly one of token_label and token_uri");
  } else if (c.pkcs11.module.empty()) {
    // No default: silently picking SoftHSM on a box with a hardware HSM would be a surprise.
    return r.bad("protector.pkcs11.module", "required: a p11-kit module name such as \"softhsm2\", "
                                            "or the absolute path of a PKCS#11 library");
  }
  if (c.pin_credential.empty() || c.pin_credential.find('/') != std::string::npos) {
    return r.bad("protector.pkcs11.pin_credential", "must be a credential name (no '/')");
  }

  if (const auto* t = subtable(root, "tokens")) {
    COFFER_RETURN_IF_ERROR(r.check_keys(*t, "tokens", {"default_ttl", "max_ttl"}));
    COFFER_RETURN_IF_ERROR(r.get_duration(*t, "tokens", "default_ttl", c.token_default_ttl_seconds, 1));
    COFFER_RETURN_IF_ERROR(r.get_duration(*t, "tokens", "max_ttl", c.token_max_ttl_seconds, 1));
  }
  if (c.token_default_ttl_seconds > c.token_max_ttl_seconds) {
    return r.bad("tokens.default_ttl", "must not exceed tokens.max_ttl");
  }

  if (const auto* g = subtable(root, "log")) {
    COFFER_RETURN_IF_ERROR(r.check_keys(*g, "log", {"level"}));
    COFFER_RETURN_IF_ERROR(r.get_string(*g, "log", "level", c.log_level));
  }
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warning" && c.log_level != "error") {
    return r.bad("log.level", "must be one of debug, info, warning, error");
  }

  if (const auto* a = subtable(root, "audit")) {
    COFFER_RETURN_IF_ERROR(r.check_keys(*a, "audit", {"path", "fsync", "sync_interval_ms", "checkpoint_every", "rotate_bytes",
                                                    "rotate_interval"}));
    COFFER_RETURN_IF_ERROR(r.get_string(*a, "audit", "path", c.audit_path));
    if (c.audit_path.empty() || c.audit_path.front() != '/') {
      return r.bad("audit.path", "must be an absolute file path (the [audit] section needs one)");
    }
    std::string fsync = "group";
    COFFER_RETURN_IF_ERROR(r.get_string(*a, "audit", "fsync", fsync));
    if (fsync != "always" && fsync != "group") return r.bad("audit.fsync", "must be \"always\" or \"group\"");
    c.audit_fsync_always = fsync == "always";
    COFFER_RETURN_IF_ERROR(r.get_int(*a, "audit", "sync_interval_ms", c.audit_sync_interval_ms, 1, 10000));
    COFFER_RETURN_IF_ERROR(r.get_int(*a, "audit", "checkpoint_every", c.audit_checkpoint_every, 1, 100000000));
    COFFER_RETURN_IF_ERROR(r.get_int(*a, "audit", "rotate_bytes", c.audit_rotate_bytes, 0, std::int64_t{1} << 50));
    if (c.audit_rotate_bytes != 0 && c.audit_rotate_bytes < 4096) {
      return r.bad("audit.rotate_bytes", "must be 0 (no rotation) or at least 4096");
    }
    if (const auto* node = a->get("rotate_interval"); node != nullptr && node->is_integer() &&
                                                      node->as_integer()->get() == 0) {
      c.audit_rotate_seconds = 0;  // explicit "never"
    } else {
      COFFER_RETURN_IF_ERROR(r.get_duration(*a, "audit", "rotate_interval", c.audit_rotate_seconds, 60));
    }
  }
  COFFER_RETURN_IF_ERROR(read_brute_force_limits(r, root, c));

  // [api]: response wrapping and request nonces (docs/api.md).
  if (const auto* a = subtable(root, "api")) {
    COFFER_RETURN_IF_ERROR(r.check_keys(*a, "api", {"max_wrapping_ttl", "nonce_window"}));
    COFFER_RETURN_IF_ERROR(r.get_duration(*a, "api", "max_wrapping_ttl", c.max_wrapping_ttl_seconds, 1));
    COFFER_RETURN_IF_ERROR(r.get_duration(*a, "api", "nonce_window", c.nonce_window_seconds, 1));
    if (c.max_wrapping_ttl_seconds > c.token_max_ttl_seconds) {
      return r.bad("api.max_wrapping_ttl", "must not exceed tokens.max_ttl (a wrapping token is a token)");
    }
    if (c.nonce_window_seconds > 86400) return r.bad("api.nonce_window", "must be at most 24h");
  }
  if (c.max_wrapping_ttl_seconds == 0) c.max_wrapping_ttl_seconds = std::min<std::int64_t>(86400, c.token_max_ttl_seconds);
  return c;
}

}  // namespace coffer::daemon
