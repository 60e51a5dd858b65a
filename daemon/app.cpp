#include "daemon/app.h"

#include "hsm/pkcs11_protector.h"
#include "keys/credential_file.h"
#include "tpm/tpm_protector.h"

namespace coffer::daemon {

Result<crypto::SecretBytes> read_pin(const Config& config, const std::optional<std::string>& pin_file) {
  const bool tpm = config.protector_type == "tpm";
  const char* what = tpm ? "cannot read the TPM auth value" : "cannot read the PKCS#11 PIN";
  std::string path;
  if (pin_file.has_value()) {
    path = *pin_file;
  } else if (tpm && config.tpm_auth_credential.empty()) {
    return crypto::SecretBytes();  // the TPM master key has no auth value: its PCR policy alone
  } else {
    auto resolved = keys::credential_path(tpm ? config.tpm_auth_credential : config.pin_credential);
    if (!resolved.ok()) return resolved.status().with_context(what);
    path = std::move(resolved).value();
  }
  auto pin = keys::read_credential_file(path);
  if (!pin.ok()) return pin.status().with_context(what);
  return pin;
}

Result<std::unique_ptr<keys::KeyProtector>> open_protector(const Config& config,
                                                           const crypto::SecretBytes& pin) {
  if (config.protector_type == "tpm") {
    COFFER_ASSIGN_OR_RETURN(auto protector, tpm::TpmProtector::open(config.tpm, pin));
    return std::unique_ptr<keys::KeyProtector>(std::move(protector));
  }
  COFFER_ASSIGN_OR_RETURN(auto protector, hsm::Pkcs11Protector::open(config.pkcs11, pin));
  return std::unique_ptr<keys::KeyProtector>(std::move(protector));
}

Result<std::unique_ptr<storage::SqliteStorage>> open_storage(const Config& config, bool create) {
  return storage::SqliteStorage::open(config.storage_path, create);
}

}  // namespace coffer::daemon
