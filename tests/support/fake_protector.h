// FakeProtector: a KeyProtector in software, for fault injection only. It wraps with AES-256-GCM
// under a random in-memory key and can be told to fail the next operations, to go "offline",
// or to lose its master key, so tests can drive every error path the real devices have.
// Never a substitute for SoftHSM or swtpm in tests of the real behaviour.
#pragma once

#include <atomic>
#include <mutex>

#include "keys/key_protector.h"

namespace coffer::testing {

class FakeProtector final : public keys::KeyProtector {
 public:
  FakeProtector() = default;

  Status create_master_key() override;
  Result<bool> has_master_key() override;
  Result<keys::WrappedKey> wrap(const crypto::SecretBytes& dek) override;
  Result<crypto::SecretBytes> unwrap(const keys::WrappedKey& wrapped) override;
  Status self_test() override;
  keys::ProtectorInfo describe() const override;
  std::uint64_t device_operations() const override { return operations_.load(); }

  // Fault injection.
  void fail_next(int count, Code code) { std::lock_guard l(mu_); fail_count_ = count; fail_code_ = code; }
  void set_offline(bool offline) { offline_ = offline; }
  void destroy_master_key() { std::lock_guard l(mu_); master_key_ = crypto::SecretBytes(); }

 private:
  Status injected_fault();

  mutable std::mutex mu_;
  crypto::SecretBytes master_key_;
  int fail_count_ = 0;
  Code fail_code_ = Code::unavailable;
  std::atomic<bool> offline_{false};
  std::atomic<std::uint64_t> operations_{0};
};

}  // namespace coffer::testing
