// RSA helpers for signed TPM PCR policies (docs/design/tpm.md): reading the operator's policy
// public key, and RSASSA-PKCS1-v1_5/SHA-256 signing for `cofferctl tpm approve`.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::crypto {

// The big-endian 256-byte modulus of an RSA-2048 public key with exponent 65537, from a
// SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----", as `openssl pkey -pubout` writes).
// Errors: invalid_argument (not such a PEM, not RSA, not 2048 bits, exponent not 65537).
Result<std::vector<std::uint8_t>> rsa2048_public_modulus_from_pem(std::string_view pem);

// RSASSA-PKCS1-v1_5 with SHA-256 over `message` (hashed here) with an RSA private key in PEM
// (PKCS#8 or traditional, unencrypted). Errors: invalid_argument (not an RSA private key), internal.
Result<std::vector<std::uint8_t>> rsa_pkcs1_sha256_sign(std::string_view private_key_pem,
                                                        ByteView message);

}  // namespace coffer::crypto
