// The TPM master key's key-blob file: the MK's TPM2B_PUBLIC and TPM2B_PRIVATE as the TPM returned
// them from TPM2_Create (the private part is encrypted by the storage root key, so the file holds
// no secret), plus what coffer needs to use and explain the key: its id, the PCR selection and the
// PCR values at sealing time (for "PCR n changed" messages), whether an auth value is needed,
// and the name of the storage root key at init (sessions are salted to it: pinned, see tpm.md).
// JSON, written once by create_master_key with mode 0600 and never overwritten.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace coffer::tpm {

inline constexpr const char* kKeyBlobFormat = "coffer-tpm-key-v1";

struct KeyBlob {
  std::string key_id;
  std::string mechanism;
  std::vector<std::uint32_t> pcrs;                 // sha256 bank
  std::map<std::uint32_t, std::string> pcr_hex;    // PCR -> value (hex) when sealed
  bool auth_value = false;
  std::string srk_name_hex;                        // the SRK at init: pinned as the salt key
  std::vector<std::uint8_t> public_area;           // marshalled TPM2B_PUBLIC
  std::vector<std::uint8_t> private_area;          // marshalled TPM2B_PRIVATE
  // PolicyAuthorize keys only (empty otherwise): the policy signing key's RSA modulus; the MK's
  // authPolicy binds its TPM name, so a different key here only makes every unwrap fail.
  std::vector<std::uint8_t> policy_key_modulus;
};

// nullopt when the file does not exist. Errors: data_loss (not a key-blob file of this format),
// permission_denied / internal (I/O).
Result<std::optional<KeyBlob>> read_key_blob(const std::string& path);

// Creates the file (mode 0600) through a temporary file and link(), so an existing file is never
// replaced and a crash leaves no half-written key. Errors: already_exists, internal (I/O).
Status write_key_blob(const std::string& path, const KeyBlob& blob);

}  // namespace coffer::tpm
