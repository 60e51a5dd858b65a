// AES-256-GCM seal/open with associated data (OpenSSL 3 EVP; the cipher is fetched once).
// Sealed layout: nonce (12 bytes, fresh from the CSPRNG) || ciphertext || tag (16 bytes).
// open() fails closed on any authentication failure and never returns partial plaintext.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::crypto {

inline constexpr std::size_t kAeadKeySize = 32;
inline constexpr std::size_t kAeadNonceSize = 12;
inline constexpr std::size_t kAeadTagSize = 16;
inline constexpr std::size_t kAeadOverhead = kAeadNonceSize + kAeadTagSize;

// Errors: invalid_argument (key not 32 bytes), internal (OpenSSL or RNG failure).
Result<std::vector<std::uint8_t>> aead_seal(const SecretBytes& key, ByteView plaintext,
                                            ByteView associated_data);

// Errors: invalid_argument (bad key size), data_loss (too short, tag or AAD mismatch: the
// message never says which, so it cannot be used as an oracle).
Result<SecretBytes> aead_open(const SecretBytes& key, ByteView sealed, ByteView associated_data);

}  // namespace coffer::crypto
