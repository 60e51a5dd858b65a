#include "tests/support/fake_protector.h"

#include "crypto/aead.h"
#include "crypto/random.h"

#include <algorithm>

namespace coffer::testing {
namespace {
constexpr char kMechanism[] = "FAKE_AES_GCM";
constexpr char kKeyId[] = "fake-mk-1";
}  // namespace

Status FakeProtector::injected_fault() {
  if (offline_) return Error(Code::unavailable, "fake protector is offline");
  std::lock_guard l(mu_);
  if (fail_count_ > 0) {
    --fail_count_;
    return Error(fail_code_, "injected fault");
  }
  return Status::Ok();
}

Status FakeProtector::create_master_key() {
  COFFER_RETURN_IF_ERROR(injected_fault());
  std::lock_guard l(mu_);
  if (!master_key_.empty()) return Error(Code::already_exists, "master key fake-mk-1 already exists");
  COFFER_ASSIGN_OR_RETURN(master_key_, crypto::random_key(crypto::kAeadKeySize));
  ++operations_;
  return Status::Ok();
}

Result<bool> FakeProtector::has_master_key() {
  COFFER_RETURN_IF_ERROR(injected_fault());
  std::lock_guard l(mu_);
  return !master_key_.empty();
}

Result<keys::WrappedKey> FakeProtector::wrap(const crypto::SecretBytes& dek) {
  COFFER_RETURN_IF_ERROR(injected_fault());
  std::lock_guard l(mu_);
  if (master_key_.empty()) return Error(Code::not_found, "master key fake-mk-1 not found");
  ++operations_;
  COFFER_ASSIGN_OR_RETURN(auto blob,
                          crypto::aead_seal(master_key_, dek.bytes(crypto::reveal()), crypto::as_bytes(kKeyId)));
  return keys::WrappedKey{kMechanism, kKeyId, std::move(blob)};
}

Result<crypto::SecretBytes> FakeProtector::unwrap(const keys::WrappedKey& wrapped) {
  COFFER_RETURN_IF_ERROR(injected_fault());
  std::lock_guard l(mu_);
  if (wrapped.mechanism != kMechanism) {
    return Error(Code::invalid_argument, "unknown wrap mechanism " + wrapped.mechanism);
  }
  if (master_key_.empty() || wrapped.master_key_id != kKeyId) {
    return Error(Code::not_found, "master key " + wrapped.master_key_id + " not found");
  }
  ++operations_;
  auto plain = crypto::aead_open(master_key_, wrapped.blob, crypto::as_bytes(kKeyId));
  if (!plain.ok()) return Error(Code::data_loss, "wrapped key failed to unwrap");
  COFFER_ASSIGN_OR_RETURN(auto locked, crypto::SecretBytes::create_locked(plain->size()));
  std::copy_n(plain->data(crypto::reveal()), plain->size(), locked.data(crypto::reveal()));
  return locked;
}

Status FakeProtector::self_test() { return keys::round_trip_self_test(*this, "fake protector self-test"); }

keys::ProtectorInfo FakeProtector::describe() const {
  return keys::ProtectorInfo{"fake", kKeyId, kMechanism, "in-memory fault-injecting fake (tests only)"};
}

}  // namespace coffer::testing
