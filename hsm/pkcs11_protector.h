// Pkcs11Protector: the KeyProtector backed by an HSM (or SoftHSM) through p11-kit. The master
// key is an AES-256 token object generated inside the token, sensitive and never extractable,
// usable only to wrap and unwrap; DEKs are wrapped with AES key wrap (RFC 5649 with padding when
// the token offers it, else RFC 3394). No PKCS#11 type appears in this header.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "keys/key_protector.h"

namespace coffer::hsm {

struct Pkcs11Config {
  std::string module;       // p11-kit module name ("softhsm2") or absolute path to a .so
  std::string token_label;  // exactly one of token_label and token_uri
  std::string token_uri;    // e.g. "pkcs11:token=coffer" or "pkcs11:token=coffer;serial=..."
  std::string key_label = "coffer-mk-1";
};

class Pkcs11Protector final : public keys::KeyProtector {
 public:
  // Loads the module, selects the token, opens a read/write session and logs in as the user
  // with `pin`, and picks the wrap mechanism from what the token reports. The MK need not exist
  // yet (create_master_key makes it). Errors: invalid_argument (configuration), not_found
  // (module or token), permission_denied (PIN: the message names the CKR), failed_precondition
  // (no usable wrap mechanism, several tokens match), unavailable (device), internal.
  static Result<std::unique_ptr<Pkcs11Protector>> open(const Pkcs11Config& config,
                                                       const crypto::SecretBytes& pin);
  // Closes the session (which logs out once it is this process's last one), finalises and
  // releases this module instance.
  ~Pkcs11Protector() override;
  Pkcs11Protector(const Pkcs11Protector&) = delete;
  Pkcs11Protector& operator=(const Pkcs11Protector&) = delete;

  Status create_master_key() override;
  Result<bool> has_master_key() override;
  Result<keys::WrappedKey> wrap(const crypto::SecretBytes& dek) override;
  Result<crypto::SecretBytes> unwrap(const keys::WrappedKey& wrapped) override;
  // Wrap/unwrap round trip of a random key, then the MK's protection: reading CKA_VALUE must
  // be refused and CKA_EXTRACTABLE must be false (failed_precondition otherwise).
  Status self_test() override;
  keys::ProtectorInfo describe() const override;
  std::uint64_t device_operations() const override;

 private:
  class Device;  // the session and everything PKCS#11-typed, in pkcs11_protector.cpp
  Pkcs11Protector(std::unique_ptr<Device> device, keys::ProtectorInfo info);

  // One session, used by one thread at a time: PKCS#11 forbids concurrent operations on a
  // session, and the daemon calls in rarely (start-up, rotation), so one lock is enough.
  mutable std::mutex mu_;
  std::unique_ptr<Device> device_;
  const keys::ProtectorInfo info_;
};

}  // namespace coffer::hsm
