// TpmProtector: the KeyProtector backed by a TPM 2.0 through tpm2-tss ESAPI. The master key is an
// RSA-2048 decryption key created inside the TPM under the storage hierarchy (fixedTPM |
// fixedParent: never duplicable), usable only through a policy session that satisfies PolicyPCR
// over the configured PCRs (sha256 bank) and, when an auth value is configured, PolicyAuthValue.
// DEKs are wrapped with RSA-OAEP (SHA-256, label "coffer-dek-v1"): TPM2_RSA_Encrypt to wrap,
// TPM2_RSA_Decrypt to unwrap; both run in salted sessions with parameter encryption so no DEK
// crosses the bus in clear. Why RSA-OAEP: docs/design/tpm.md. No TSS type appears in this header.
// With SignedPcrPolicies the policy is instead PolicyAuthorize by the operator's key: any PCR
// policy the operator signed unlocks the key (updates do not lock the box out).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "keys/key_protector.h"

namespace coffer::tpm {

struct KeyBlob;

// Signed PCR policies (PolicyAuthorize, docs/design/tpm.md). An operator approves a PCR policy by
// signing it with the policy signing key (RSA-2048, public exponent 65537, RSASSA-PKCS1-v1_5 with
// SHA-256) over `policy_digest || policyRef`, where policyRef is the master key's key id.
struct PcrApproval {
  std::vector<std::uint32_t> pcrs;          // sha256 bank, sorted and distinct
  std::vector<std::uint8_t> policy_digest;  // pcr_policy_digest() of the approved PCR values
  std::vector<std::uint8_t> signature;      // RSASSA-PKCS1-v1_5(SHA-256(policy_digest || key_id))
};

// The TPM2_PolicyPCR digest (from an empty policy, SHA-256) of the sha256-bank PCR values given
// (PCR -> 32-byte value): what the operator signs in a PcrApproval. Computed in software, so an
// approval for the values after an update can be made before the update. Errors: invalid_argument.
Result<std::vector<std::uint8_t>> pcr_policy_digest(
    const std::map<std::uint32_t, std::vector<std::uint8_t>>& pcr_values);

// PolicyAuthorize settings (kept out of TpmConfig, which callers aggregate-initialise). When
// `policy_key_modulus` is set (the operator's RSA-2048 policy signing key's modulus, big-endian,
// exponent 65537), a new MK's authPolicy is PolicyAuthorize(that key's name, policyRef = key_id)
// [+ PolicyAuthValue] instead of PolicyPCR(pcrs): the MK is usable under any PCR policy the
// operator signed. `approvals` are tried in order; the first whose digest matches the present
// PCR values is used. TpmConfig::pcrs then only names the PCRs recorded at init (for messages).
struct SignedPcrPolicies {
  std::vector<std::uint8_t> policy_key_modulus;
  std::vector<PcrApproval> approvals;
};

struct TpmConfig {
  std::string tcti = "device:/dev/tpmrm0";  // a tctildr string, e.g. "swtpm:host=127.0.0.1,port=2321"
  std::vector<std::uint32_t> pcrs = {7};    // sha256 bank; PCR 7 = Secure Boot state
  std::string key_blob_file;                // the MK's public/private blobs (written by init)
  std::string key_id = "coffer-mk-1";
};

class TpmProtector final : public keys::KeyProtector {
 public:
  // Checks the configuration and that the TPM answers; when the key-blob file exists, that it
  // matches the configuration (key id, PCR set, auth value configured or not). `auth_value` empty
  // means no auth value. The MK need not exist yet. Errors: invalid_argument (configuration),
  // failed_precondition (key-blob file disagrees with the configuration), data_loss (key-blob
  // file unreadable as such), unavailable (TPM unreachable), internal.
  static Result<std::unique_ptr<TpmProtector>> open(const TpmConfig& config,
                                                    const crypto::SecretBytes& auth_value);
  // With signed PCR policies (PolicyAuthorize). Beyond the above: invalid_argument (not an
  // RSA-2048 modulus; key_id, the policyRef, longer than 32 bytes), failed_precondition (the
  // key-blob file is bound to another policy key, or to literal PCRs, or vice versa).
  static Result<std::unique_ptr<TpmProtector>> open(const TpmConfig& config,
                                                    const crypto::SecretBytes& auth_value,
                                                    SignedPcrPolicies policies);
  ~TpmProtector() override = default;
  TpmProtector(const TpmProtector&) = delete;
  TpmProtector& operator=(const TpmProtector&) = delete;

  Status create_master_key() override;
  Result<bool> has_master_key() override;
  Result<keys::WrappedKey> wrap(const crypto::SecretBytes& dek) override;
  // Beyond the contract: failed_precondition "PCR <n> changed since the key was sealed; ..." when
  // the bound PCRs moved (with signed policies: when no approval matches the present values);
  // permission_denied when the matching approval is not signed by the policy key, and for a
  // wrong auth value (with the TPM's dictionary-attack counter); unavailable for DA lockout and
  // an unreachable TPM.
  Result<crypto::SecretBytes> unwrap(const keys::WrappedKey& wrapped) override;
  // Round trip of a random key, then the MK's stored attributes: fixedTPM, fixedParent,
  // sensitiveDataOrigin and no userWithAuth (policy only), else failed_precondition.
  Status self_test() override;
  keys::ProtectorInfo describe() const override;
  std::uint64_t device_operations() const override { return ops_.load(); }

  const TpmConfig& config() const { return config_; }

  // The current sha256-bank values of `pcrs` (for making a PcrApproval of the present state).
  // Errors: unavailable, failed_precondition (no sha256 bank), internal.
  Result<std::map<std::uint32_t, std::vector<std::uint8_t>>> read_pcr_values(
      const std::vector<std::uint32_t>& pcrs);

 private:
  TpmProtector(TpmConfig config, SignedPcrPolicies policies, crypto::SecretBytes auth,
               keys::ProtectorInfo info)
      : config_(std::move(config)),
        policies_(std::move(policies)),
        auth_(std::move(auth)),
        info_(std::move(info)) {}

  Status still_matches(const KeyBlob& blob) const;

  // Each operation opens its own connection to the TPM (cheap with /dev/tpmrm0), so a TPM or
  // simulator that went away and came back is used again without restarting the daemon, and a
  // raw simulator's single connection is not held between operations.
  mutable std::mutex mu_;
  const TpmConfig config_;
  const SignedPcrPolicies policies_;
  const crypto::SecretBytes auth_;
  const keys::ProtectorInfo info_;
  std::atomic<std::uint64_t> ops_{0};
};

// "7,16" for logs and status.
std::string pcr_list(const std::vector<std::uint32_t>& pcrs);

}  // namespace coffer::tpm
