// Keyring: the data-encryption keys (DEK v1..vN) and the "derive" root key, stored wrapped by
// the master key in the Storage keyring table, unwrapped once at load into locked memory.
// After load() the KeyProtector is never called on the request path: reads and writes only use
// what is held here. Two HKDF sub-keys of the derive root (token hashing, audit HMAC) are
// derived at load and used for nothing else. Destroying the Keyring wipes every key.
//
// Thread safety: every const method and acquire_encryption_key() may be called from many
// threads at once; rotate() may run concurrently with them (it takes the write lock only to
// publish the new DEK). Pointers returned by dek() stay valid for the Keyring's lifetime
// (DEKs are never removed while it lives).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "keys/key_protector.h"
#include "storage/storage.h"

namespace coffer::keys {

inline constexpr char kPurposeDek[] = "dek";
inline constexpr char kPurposeDerive[] = "derive";
inline constexpr char kTokenHashInfo[] = "coffer token-hash v1";
inline constexpr char kAuditHmacInfo[] = "coffer audit-hmac v1";

struct KeyringOptions {
  // A DEK seals at most this many records. AES-GCM with random 96-bit nonces stays within the
  // NIST SP 800-38D collision bound (2^-32) for up to 2^32 messages per key; 2^30 keeps a wide
  // margin. Tests lower it.
  std::uint64_t dek_encryption_limit = std::uint64_t{1} << 30;
  // Encryptions are counted in memory and persisted ahead of use in blocks of this size (one
  // storage write per block, not per record). A crash can only over-count, never under-count:
  // the stored figure is always >= the number of nonces actually used.
  std::uint64_t count_reservation = 1024;
};

// The key a write must use, and its version (recorded in the sealed header and the row).
struct EncryptionKey {
  std::uint32_t version = 0;
  const crypto::SecretBytes* key = nullptr;
};

class Keyring {
 public:
  ~Keyring();
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;

  // Creates DEK v1 and derive v1 (32 random bytes each, locked memory), wraps each with the
  // protector, checks that each unwraps back to the same bytes, and stores both rows in one
  // transaction. Errors: already_exists (a keyring is present; nothing is changed), the
  // protector's error (no MK, device gone), storage errors.
  static Status initialize(storage::Storage& storage, KeyProtector& protector);

  // Unwraps every keyring row once and derives the sub-keys. Fails closed: one row that does
  // not unwrap fails the whole load with the protector's code and message ("keyring DEK v1
  // could not be unwrapped: ..."). Errors: failed_precondition (no keyring: "coffer is not
  // initialised: run cofferctl init"), data_loss (incomplete keyring, unknown purpose, wrong
  // key size), the protector's error, storage errors.
  static Result<std::unique_ptr<Keyring>> load(storage::Storage& storage, KeyProtector& protector,
                                               KeyringOptions options = {});

  // The version new records are sealed with (the highest DEK version).
  std::uint32_t current_dek_version() const;
  // Every DEK version held, ascending.
  std::vector<std::uint32_t> dek_versions() const;
  // The DEK of a version, for opening records. Errors: not_found (no such version).
  Result<const crypto::SecretBytes*> dek(std::uint32_t version) const;

  // Reserves one encryption on the current DEK and returns it. Counting happens before the
  // nonce is used, so a failed write over-counts (safe) rather than under-counts.
  // When the current DEK has reached the limit this returns resource_exhausted and never
  // rotates on its own: rotation is a key ceremony (it calls the HSM/TPM, which the request
  // path must not do, and `cofferctl rotate` audits it). At 2^30 writes this is far away;
  // the daemon should warn early using encryptions_remaining().
  // Errors: resource_exhausted (limit reached), storage errors persisting the count.
  Result<EncryptionKey> acquire_encryption_key(storage::Storage& storage);
  // How many more records the current DEK may seal.
  std::uint64_t encryptions_remaining() const;
  // How many encryptions are counted for a DEK version (reserved blocks included; 0 if absent).
  std::uint64_t encryptions(std::uint32_t version) const;

  // HKDF-SHA256(derive v1, info) sub-keys, 32 bytes each, derived at load.
  const crypto::SecretBytes& token_hash_key() const { return token_hash_key_; }
  const crypto::SecretBytes& audit_hmac_key() const { return audit_hmac_key_; }

  // Adds DEK v(n+1): random, wrapped, round-trip checked, stored, then made current. Old DEKs
  // stay for reading old records. Errors: already_exists (another process rotated first; reload),
  // the protector's error, storage errors. On error the current DEK is unchanged.
  Status rotate(storage::Storage& storage, KeyProtector& protector);

 private:
  struct DekSlot {
    explicit DekSlot(std::uint32_t v, crypto::SecretBytes k, std::uint64_t counted)
        : version(v), key(std::move(k)), used(counted), reserved(counted) {}
    std::uint32_t version;
    crypto::SecretBytes key;
    std::atomic<std::uint64_t> used;      // encryptions handed out (in memory)
    std::atomic<std::uint64_t> reserved;  // encryptions already persisted; written under reserve_mu
    std::mutex reserve_mu;
  };

  explicit Keyring(KeyringOptions options) : options_(options) {}
  Status reserve_block(storage::Storage& storage, DekSlot& slot, std::uint64_t needed);

  KeyringOptions options_;
  mutable std::shared_mutex mu_;  // guards deks_ (structure) and current_
  std::mutex rotate_mu_;          // one rotation at a time; held across the device calls, mu_ is not
  std::map<std::uint32_t, std::unique_ptr<DekSlot>> deks_;
  DekSlot* current_ = nullptr;
  crypto::SecretBytes token_hash_key_;
  crypto::SecretBytes audit_hmac_key_;
};

}  // namespace coffer::keys
