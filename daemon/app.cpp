#include "daemon/app.h"

#include "hsm/pkcs11_protector.h"
#include "keys/credential_file.h"

namespace coffer::daemon {

Result<crypto::SecretBytes> read_pin(const Config& config, const std::optional<std::string>& pin_file) {
  std::string path;
  if (pin_file.has_value()) {
    path = *pin_file;
  } else {
    COFFER_ASSIGN_OR_RETURN(path, keys::credential_path(config.pin_credential));
  }
  auto pin = keys::read_credential_file(path);
  if (!pin.ok()) return pin.status().with_context("cannot read the PKCS#11 PIN");
  return pin;
}

Result<std::unique_ptr<keys::KeyProtector>> open_protector(const Config& config,
                                                           const crypto::SecretBytes& pin) {
  COFFER_ASSIGN_OR_RETURN(auto protector, hsm::Pkcs11Protector::open(config.pkcs11, pin));
  return std::unique_ptr<keys::KeyProtector>(std::move(protector));
}

Result<std::unique_ptr<storage::SqliteStorage>> open_storage(const Config& config, bool create) {
  return storage::SqliteStorage::open(config.storage_path, create);
}

}  // namespace coffer::daemon
