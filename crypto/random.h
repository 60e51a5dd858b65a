// The CSPRNG (OpenSSL RAND_bytes) and the random identifiers coffer mints from it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::crypto {

// Errors: internal when the RNG fails (never falls back to a weaker source).
Status random_bytes(std::span<std::uint8_t> out);
// n random key bytes in locked memory.
Result<SecretBytes> random_key(std::size_t n);
// A random string over [0-9A-Za-z] of `length` characters (uniform, by rejection sampling),
// held in SecretBytes because it is used for credentials (tokens).
Result<SecretBytes> random_base62(std::size_t length);
// A random RFC 4122 version-4 UUID string (request ids, accessors).
Result<std::string> random_uuid();
// The same shape for request ids, which every request needs: cut from a per-thread buffer of
// CSPRNG output (one RAND_bytes call per 32 ids; a forked child refills first). Not for anything
// that is a credential or must stay unguessable by someone who can read process memory.
Result<std::string> random_request_id();

}  // namespace coffer::crypto
