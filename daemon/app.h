// Assembly of coffer's parts from a Config, shared by cofferd and cofferctl: reading the PIN
// credential, opening the key protector and the database. Owners are returned to the caller;
// nothing here is global.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "daemon/config.h"
#include "keys/key_protector.h"
#include "storage/sqlite_storage.h"
#include "tpm/tpm_protector.h"

namespace coffer::daemon {

// The protector's secret: for pkcs11 the PIN, for tpm the optional auth value of the master key.
// From `pin_file` when given (cofferctl --pin-file), else from the systemd credential
// $CREDENTIALS_DIRECTORY/<pin_credential> (pkcs11) or <protector.tpm.auth_credential> (tpm; an
// empty credential name means no auth value, and the result is empty).
Result<crypto::SecretBytes> read_pin(const Config& config, const std::optional<std::string>& pin_file);

// The protector named by protector.type ("pkcs11" or "tpm"); `pin` is what read_pin returned.
Result<std::unique_ptr<keys::KeyProtector>> open_protector(const Config& config,
                                                           const crypto::SecretBytes& pin);

// Signed PCR policies from [protector.tpm] policy_public_key and pcr_approvals_file; empty
// (no modulus) when not configured. A missing approvals file means no approvals (the unwrap then
// fails with the PCR message). The file is a JSON array of
// {"pcrs": [16], "digest": "<hex>", "signature": "<hex>"}. Errors: invalid_argument naming the
// file and what is wrong, not_found (policy key file missing), internal.
Result<tpm::SignedPcrPolicies> load_signed_pcr_policies(const Config& config);

// Appends `approval` to the approvals file at `path` (created when missing; rewritten atomically).
Status append_pcr_approval(const std::string& path, const tpm::PcrApproval& approval);

Result<std::unique_ptr<storage::SqliteStorage>> open_storage(const Config& config, bool create);

inline constexpr char kVersion[] = "0.1.0";

}  // namespace coffer::daemon
