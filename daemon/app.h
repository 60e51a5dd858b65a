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

namespace coffer::daemon {

// The PIN from `pin_file` when given (cofferctl --pin-file), else from the systemd credential
// $CREDENTIALS_DIRECTORY/<pin_credential>.
Result<crypto::SecretBytes> read_pin(const Config& config, const std::optional<std::string>& pin_file);

Result<std::unique_ptr<keys::KeyProtector>> open_protector(const Config& config,
                                                           const crypto::SecretBytes& pin);

Result<std::unique_ptr<storage::SqliteStorage>> open_storage(const Config& config, bool create);

inline constexpr char kVersion[] = "0.1.0";

}  // namespace coffer::daemon
