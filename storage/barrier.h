// Barrier: the AEAD layer between coffer and its storage, and the only place a secret's
// plaintext becomes ciphertext (and back). Storage below it is untrusted; everything it holds
// for a secret is either authenticated data, ciphertext or the tag (systemd's creds-util rule).
//
// Sealed record layout (the `sealed` column):
//   header = "CFR1" (4 bytes) || format version (1 byte, = 1) || DEK version (u32 big-endian)
//   sealed = header || nonce (12) || ciphertext || tag (16)          [crypto::aead_seal output]
// Associated data = header || u32be(len(mount)) || mount || u32be(len(path)) || path.
// So a record copied to another path or mount, swapped between rows, or with its header or
// its row's dek_version column edited, does not open: the read fails with data_loss.
//
// Thread-safe: it holds no state of its own beyond references to the (thread-safe) storage and
// keyring, which must outlive it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "keys/keyring.h"
#include "storage/storage.h"

namespace coffer::storage {

inline constexpr char kSealedMagic[4] = {'C', 'F', 'R', '1'};
inline constexpr std::uint8_t kSealedFormatVersion = 1;
inline constexpr std::size_t kSealedHeaderSize = 4 + 1 + 4;

class Barrier {
 public:
  Barrier(Storage& storage, keys::Keyring& keyring) : storage_(storage), keyring_(keyring) {}

  // The plaintext of (mount, path), or nullopt when there is no such record.
  // Errors: data_loss (the record fails authentication, has an unknown format, names a DEK
  // the keyring does not hold, or its header and row disagree on the DEK version; the message
  // names mount and path, never any content), storage errors.
  Result<std::optional<crypto::SecretBytes>> read(const std::string& mount, const std::string& path);

  // Seals `plaintext` under the keyring's current DEK (counting the encryption) and stores it,
  // replacing any previous record. Errors: invalid_argument (empty mount or path),
  // resource_exhausted (the current DEK reached its limit: rotate), crypto and storage errors.
  Status write(const std::string& mount, const std::string& path,
               const crypto::SecretBytes& plaintext);

  // Whether a record was deleted. Errors: storage errors.
  Result<bool> remove(const std::string& mount, const std::string& path);

  // Vault LIST of the folder `prefix` (see Storage::list_secrets). Names only: nothing is
  // decrypted. Errors: storage errors.
  Result<std::vector<std::string>> list(const std::string& mount, const std::string& prefix);

  // The same sealing for a blob its caller stores elsewhere (a response-wrapped response lives
  // in its own table, bound to its wrapping token): same layout, same associated data as a
  // record of (mount, path), so it opens only under that identity. seal() counts the encryption
  // like write(). Errors: as write() (seal) and read() (open), without storage access.
  struct Sealed {
    std::uint32_t dek_version = 0;
    std::vector<std::uint8_t> bytes;
  };
  Result<Sealed> seal(const std::string& mount, const std::string& path, const crypto::SecretBytes& plaintext);
  Result<crypto::SecretBytes> open(const std::string& mount, const std::string& path, std::uint32_t dek_version,
                                   const std::vector<std::uint8_t>& sealed);

 private:
  Storage& storage_;
  keys::Keyring& keyring_;
};

}  // namespace coffer::storage
