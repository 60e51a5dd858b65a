// KeyProtector: the one narrow interface between coffer and the hardware that holds the master
// key (MK). Implementations: hsm/ (PKCS#11 through p11-kit), later tpm/, and a fault-injecting
// fake in tests/support/. The MK never leaves the device; coffer only asks it to wrap and unwrap
// data-encryption keys (DEKs). Every test in tests/unit/keys/key_protector_contract_test.cpp runs
// against every implementation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::keys {

// A DEK as the protector returned it: opaque bytes plus what is needed to unwrap it again.
struct WrappedKey {
  std::string mechanism;            // e.g. "CKM_AES_KEY_WRAP_PAD"; recorded so unwrap uses the same
  std::string master_key_id;        // e.g. "coffer-mk-1"
  std::vector<std::uint8_t> blob;   // the wrapped key bytes (public: safe to store)
};

// What `cofferctl status` and the daemon's start-up log show about the protector.
struct ProtectorInfo {
  std::string kind;           // "pkcs11", "tpm", "fake"
  std::string master_key_id;  // label of the MK
  std::string mechanism;      // wrap mechanism in use
  std::string detail;         // module / token / manufacturer, human readable
};

class KeyProtector {
 public:
  virtual ~KeyProtector() = default;

  // Creates the master key in the device. Errors: already_exists (an MK with this id is
  // present: never overwrite), permission_denied (login), unavailable (device), internal.
  virtual Status create_master_key() = 0;

  // Whether the MK is present and usable. Errors only when the device cannot be asked.
  virtual Result<bool> has_master_key() = 0;

  // Wraps a DEK (typically 32 bytes) under the MK. Errors: not_found (no MK),
  // unavailable (device gone), internal.
  virtual Result<WrappedKey> wrap(const crypto::SecretBytes& dek) = 0;

  // Unwraps a DEK. The result is in locked memory. Errors: not_found (no MK with that id),
  // data_loss (the blob fails to unwrap: tampered, or wrapped by another MK),
  // invalid_argument (unknown mechanism), unavailable (device gone), internal.
  virtual Result<crypto::SecretBytes> unwrap(const WrappedKey& wrapped) = 0;

  // Wraps and unwraps a random key and checks the round trip and that the MK is not
  // extractable. Run at daemon start and by `cofferctl status`.
  virtual Status self_test() = 0;

  virtual ProtectorInfo describe() const = 0;

  // Number of device operations (wrap/unwrap/...) performed so far: lets tests and the
  // benchmark show that the request path makes none.
  virtual std::uint64_t device_operations() const = 0;
};

}  // namespace coffer::keys

namespace coffer::keys {

// The part of self_test() every protector shares: wrap a fresh random 32-byte key and check that
// it unwraps to the same bytes. `what` names the protector in the error ("TPM self-test (...)").
Status round_trip_self_test(KeyProtector& protector, const std::string& what);

}  // namespace coffer::keys
