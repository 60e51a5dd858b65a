// Keyed hashes and key derivation: HMAC-SHA256, HKDF-SHA256, SHA-256, constant-time compare.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::crypto {

using Digest = std::array<std::uint8_t, 32>;

// Hash for Digest-keyed tables (parsed certificates, cached tokens): the keys are SHA-256 or
// HMAC-SHA256 outputs, whose bytes are already uniform, so the first eight are the hash.
struct DigestHash {
  std::size_t operator()(const Digest& d) const noexcept {
    std::size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

// HMAC-SHA256(key, message). Errors: internal (OpenSSL failure).
Result<Digest> hmac_sha256(const SecretBytes& key, ByteView message);

// SHA-256 of public data (certificate fingerprints, audit chain links).
Digest sha256(ByteView data);

// HKDF-SHA256 (RFC 5869) into locked memory. `info` names the purpose and must differ for every
// sub-key ("coffer token-hash v1", ...), so one derived key is never usable as another.
Result<SecretBytes> hkdf_sha256(const SecretBytes& input_key, ByteView salt, std::string_view info,
                                std::size_t length);

// Constant-time equality for equal-length inputs; different lengths compare unequal.
bool constant_time_equal(ByteView a, ByteView b);

}  // namespace coffer::crypto
