// Reading secrets handed to the daemon as systemd credentials (LoadCredential= /
// LoadCredentialEncrypted=): one small file per secret under $CREDENTIALS_DIRECTORY. The HSM user
// PIN arrives this way, never as an environment variable or a command-line argument.
#pragma once

#include <string>

#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::keys {

// Largest credential accepted; a PIN or passphrase is far smaller, so more is a misconfiguration.
inline constexpr std::size_t kMaxCredentialSize = 4096;

// Reads the whole file into wiped memory and strips one trailing "\n" or "\r\n" (editors add
// one). The file must be a regular file (not a symlink, FIFO or device), with one link, owned by
// the effective user or root, and not accessible to group or other (mode & 0077 == 0).
// Errors: not_found (no such file), permission_denied (mode, owner, link count, symlink, or the
// open itself was refused), invalid_argument (not a regular file, empty, larger than
// kMaxCredentialSize), internal (I/O error).
Result<crypto::SecretBytes> read_credential_file(const std::string& path);

// "$CREDENTIALS_DIRECTORY/<name>". Errors: invalid_argument (empty name, '/', "." or ".."),
// failed_precondition ($CREDENTIALS_DIRECTORY unset or not absolute: the message explains the
// systemd LoadCredentialEncrypted= setup).
Result<std::string> credential_path(const std::string& name);

}  // namespace coffer::keys
