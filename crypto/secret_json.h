// SecretJson: nlohmann::json whose every allocation (strings, object nodes, arrays, and the
// parser's own token buffer) goes through a wiping allocator, so the parsed JSON of a secret
// leaves no plaintext behind in freed heap memory. Use it for secret values and for response
// bodies that carry tokens; plain nlohmann::json is fine for non-secret metadata.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crypto/secret_bytes.h"
#include "crypto/wiping_allocator.h"

namespace coffer::crypto {

using SecretJson = nlohmann::basic_json<std::map, std::vector, SecretString, bool, std::int64_t,
                                        std::uint64_t, double, WipingAllocator>;

// Serialises into SecretBytes (the intermediate string is wiped too).
inline SecretBytes dump_secret(const SecretJson& j) {
  SecretString s = j.dump();
  return SecretBytes::copy_of(std::string_view(s.data(), s.size()));
}

}  // namespace coffer::crypto
