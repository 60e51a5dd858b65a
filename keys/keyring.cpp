// Keyring: creation (cofferctl init), load (daemon start), rotation and encryption counting of
// the wrapped DEKs and the derive root key. See keyring.h for the contract.
#include "keys/keyring.h"

#include <algorithm>
#include <ctime>
#include <string>

#include "crypto/aead.h"
#include "crypto/mac.h"
#include "crypto/random.h"

namespace coffer::keys {
namespace {

constexpr std::size_t kKeySize = crypto::kAeadKeySize;

std::string label(const std::string& purpose, std::uint32_t version) {
  return std::string(purpose == kPurposeDek ? "DEK" : purpose) + " v" + std::to_string(version);
}

// Wraps a fresh key and unwraps it again before anything is stored: a wrapped blob that the
// device cannot open would be found out only at the next start, after records were sealed
// with it. One extra device call per ceremony is cheap insurance against that data loss.
Result<storage::KeyringRow> wrap_checked(KeyProtector& protector, const std::string& purpose,
                                         std::uint32_t version, const crypto::SecretBytes& key) {
  auto wrapped = protector.wrap(key);
  if (!wrapped.ok()) {
    return wrapped.status().with_context("keyring " + label(purpose, version) +
                                         " could not be wrapped");
  }
  auto back = protector.unwrap(*wrapped);
  if (!back.ok()) {
    return back.status().with_context("keyring " + label(purpose, version) +
                                      " did not unwrap right after wrapping");
  }
  if (!back->equals(key)) {
    return Error(Code::internal, "keyring " + label(purpose, version) +
                                     ": the protector unwrapped different bytes than it wrapped");
  }
  storage::KeyringRow row;
  row.purpose = purpose;
  row.version = version;
  row.mechanism = wrapped->mechanism;
  row.master_key_id = wrapped->master_key_id;
  row.wrapped = std::move(wrapped->blob);
  row.created_at = static_cast<std::int64_t>(std::time(nullptr));
  row.encryptions = 0;
  return row;
}

}  // namespace

Keyring::~Keyring() = default;  // SecretBytes members wipe themselves

Status Keyring::initialize(storage::Storage& storage, KeyProtector& protector) {
  COFFER_ASSIGN_OR_RETURN(auto existing, storage.load_keyring());
  if (!existing.empty()) {
    return Error(Code::already_exists, "coffer is already initialised: the keyring holds " +
                                           std::to_string(existing.size()) + " keys");
  }
  std::vector<storage::KeyringRow> rows;
  for (const char* purpose : {kPurposeDek, kPurposeDerive}) {
    COFFER_ASSIGN_OR_RETURN(auto key, crypto::random_key(kKeySize));
    COFFER_ASSIGN_OR_RETURN(auto row, wrap_checked(protector, purpose, 1, key));
    rows.push_back(std::move(row));
  }
  // One transaction: a concurrent init loses with already_exists and a crash leaves nothing.
  return storage.insert_keyring_rows(rows);
}

Result<std::unique_ptr<Keyring>> Keyring::load(storage::Storage& storage, KeyProtector& protector,
                                               KeyringOptions options) {
  if (options.dek_encryption_limit == 0 || options.count_reservation == 0) {
    return Error(Code::invalid_argument, "keyring options: limits must be positive");
  }
  COFFER_ASSIGN_OR_RETURN(auto rows, storage.load_keyring());
  if (rows.empty()) {
    return Error(Code::failed_precondition, "coffer is not initialised: run cofferctl init");
  }
  std::unique_ptr<Keyring> ring(new Keyring(options));
  crypto::SecretBytes derive_root;
  for (auto& row : rows) {
    if (row.purpose != kPurposeDek && row.purpose != kPurposeDerive) {
      // Refuse rather than skip: an unknown purpose means a newer coffer wrote this keyring.
      return Error(Code::data_loss, "keyring row '" + row.purpose + "' v" +
                                        std::to_string(row.version) + " has an unknown purpose");
    }
    auto key = protector.unwrap(WrappedKey{row.mechanism, row.master_key_id, row.wrapped});
    if (!key.ok()) {
      return key.status().with_context("keyring " + label(row.purpose, row.version) +
                                        " could not be unwrapped");
    }
    if (key->size() != kKeySize) {
      return Error(Code::data_loss, "keyring " + label(row.purpose, row.version) +
                                        " unwrapped to " + std::to_string(key->size()) +
                                        " bytes, expected 32");
    }
    if (row.purpose == kPurposeDek) {
      ring->deks_.emplace(row.version, std::make_unique<DekSlot>(row.version, std::move(*key),
                                                                 row.encryptions));
    } else if (row.version == 1) {
      derive_root = std::move(*key);
    }
    // Later derive versions are unwrapped (so a broken row still fails closed) but unused:
    // changing the derive root would invalidate every stored token hash.
  }
  if (ring->deks_.empty()) return Error(Code::data_loss, "keyring is incomplete: it holds no DEK");
  if (derive_root.empty()) {
    return Error(Code::data_loss, "keyring is incomplete: it holds no derive v1 key");
  }
  ring->current_ = ring->deks_.rbegin()->second.get();
  COFFER_ASSIGN_OR_RETURN(ring->token_hash_key_,
                          crypto::hkdf_sha256(derive_root, {}, kTokenHashInfo, kKeySize));
  COFFER_ASSIGN_OR_RETURN(ring->audit_hmac_key_,
                          crypto::hkdf_sha256(derive_root, {}, kAuditHmacInfo, kKeySize));
  return ring;
}

std::uint32_t Keyring::current_dek_version() const {
  std::shared_lock lock(mu_);
  return current_->version;
}

std::vector<std::uint32_t> Keyring::dek_versions() const {
  std::shared_lock lock(mu_);
  std::vector<std::uint32_t> out;
  for (const auto& [version, slot] : deks_) out.push_back(version);
  return out;
}

Result<const crypto::SecretBytes*> Keyring::dek(std::uint32_t version) const {
  std::shared_lock lock(mu_);
  auto it = deks_.find(version);
  if (it == deks_.end()) {
    return Error(Code::not_found, "the keyring has no DEK v" + std::to_string(version));
  }
  return &it->second->key;
}

Result<EncryptionKey> Keyring::acquire_encryption_key(storage::Storage& storage) {
  std::shared_lock lock(mu_);
  DekSlot& slot = *current_;
  std::uint64_t n = slot.used.load();
  do {
    if (n >= options_.dek_encryption_limit) {
      return Error(Code::resource_exhausted,
                   "DEK v" + std::to_string(slot.version) + " has sealed its limit of " +
                       std::to_string(options_.dek_encryption_limit) +
                       " records; run cofferctl rotate to add a new DEK");
    }
  } while (!slot.used.compare_exchange_weak(n, n + 1));
  const std::uint64_t needed = n + 1;
  if (needed > slot.reserved.load()) COFFER_RETURN_IF_ERROR(reserve_block(storage, slot, needed));
  return EncryptionKey{slot.version, &slot.key};
}

// Persists the count ahead of use. Under reserve_mu so that concurrent writers crossing a block
// boundary persist one block, not one each.
Status Keyring::reserve_block(storage::Storage& storage, DekSlot& slot, std::uint64_t needed) {
  std::lock_guard guard(slot.reserve_mu);
  const std::uint64_t reserved = slot.reserved.load();
  if (needed <= reserved) return Status::Ok();
  const std::uint64_t room = options_.dek_encryption_limit > reserved
                                 ? options_.dek_encryption_limit - reserved
                                 : 0;
  const std::uint64_t block = std::max(needed - reserved, std::min(options_.count_reservation, room));
  auto status = storage.add_encryptions(kPurposeDek, slot.version, block);
  if (!status.ok()) {
    return status.with_context("cannot record the encryption count of DEK v" +
                               std::to_string(slot.version));
  }
  slot.reserved.store(reserved + block);
  return Status::Ok();
}

std::uint64_t Keyring::encryptions_remaining() const {
  std::shared_lock lock(mu_);
  const std::uint64_t used = current_->used.load();
  return used >= options_.dek_encryption_limit ? 0 : options_.dek_encryption_limit - used;
}

std::uint64_t Keyring::encryptions(std::uint32_t version) const {
  std::shared_lock lock(mu_);
  auto it = deks_.find(version);
  return it == deks_.end() ? 0 : it->second->used.load();
}

Status Keyring::rotate(storage::Storage& storage, KeyProtector& protector) {
  std::lock_guard rotating(rotate_mu_);
  const std::uint32_t next = current_dek_version() + 1;
  COFFER_ASSIGN_OR_RETURN(auto key, crypto::random_key(kKeySize));
  COFFER_ASSIGN_OR_RETURN(auto row, wrap_checked(protector, kPurposeDek, next, key));
  auto stored = storage.insert_keyring_row(row);
  if (!stored.ok()) {
    return stored.with_context("cannot store keyring DEK v" + std::to_string(next));
  }
  auto slot = std::make_unique<DekSlot>(next, std::move(key), 0);
  std::unique_lock lock(mu_);
  current_ = slot.get();
  deks_.emplace(next, std::move(slot));
  return Status::Ok();
}

}  // namespace coffer::keys
