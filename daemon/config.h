// cofferd's configuration: one TOML file (daemon/cofferd.example.toml documents every option).
// Unknown keys are refused (a typo must not silently fall back to a default), every option has a
// safe default, and values are checked here so the rest of the daemon gets typed, valid settings.
#pragma once

#include <cstdint>
#include <string>

#include "api/http_server.h"
#include "api/rate_limit.h"
#include "auth/login_lockout.h"
#include "common/status.h"
#include "hsm/pkcs11_protector.h"
#include "tpm/tpm_protector.h"

namespace coffer::daemon {

struct Config {
  std::string source_path;
  api::HttpServerConfig listener;       // [listener]
  std::size_t max_json_depth = 32;      // [listener] max_json_depth
  std::string storage_path = "/var/lib/coffer/coffer.db";
  std::string protector_type = "pkcs11";
  hsm::Pkcs11Config pkcs11;             // [protector.pkcs11]
  std::string pin_credential = "coffer-pkcs11-pin";
  tpm::TpmConfig tpm{"device:/dev/tpmrm0", {7}, "/var/lib/coffer/tpm-master-key.json",
                     "coffer-mk-1"};  // [protector.tpm]
  std::string tpm_auth_credential;       // [protector.tpm] auth_credential; empty: no auth value
  // [protector.tpm] signed PCR policies (docs/design/tpm.md): the operator's policy public key
  // (SubjectPublicKeyInfo PEM, RSA-2048) and the JSON file of approvals. Both empty: literal PCRs.
  std::string tpm_policy_public_key;
  std::string tpm_pcr_approvals_file;
  std::int64_t token_default_ttl_seconds = 15 * 60;
  std::int64_t token_max_ttl_seconds = 24 * 3600;
  std::string log_level = "info";
  // [audit]: config-only (never settable through the API). Empty path = no audit device.
  std::string audit_path;
  bool audit_fsync_always = false;            // fsync = "always" | "group"
  std::int64_t audit_sync_interval_ms = 50;   // group commit: fsync at most this long after a write
  std::int64_t audit_checkpoint_every = 1000; // records between MAC'd checkpoints
  std::int64_t audit_rotate_bytes = 0;        // rotate the file at this size; 0 = never
  std::int64_t audit_rotate_seconds = 0;      // rotate a non-empty file this often; 0 = never
  // [rate_limit] (per class: [rate_limit.login], [rate_limit.read], [rate_limit.write]) and
  // [lockout]: the brute-force defences, on by default.
  api::RateLimitSettings rate_limit;
  auth::LockoutSettings lockout;
  // [api]: the longest X-Vault-Wrap-TTL accepted (0 in the file's absence: 24h or tokens.max_ttl
  // if shorter) and how far an X-Coffer-Nonce timestamp may be from the server's clock.
  std::int64_t max_wrapping_ttl_seconds = 0;
  std::int64_t nonce_window_seconds = 300;
};

// Errors: invalid_argument naming the file, the key and what is wrong; not_found for a
// missing file.
Result<Config> load_config(const std::string& path);

}  // namespace coffer::daemon
