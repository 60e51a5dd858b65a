// Hex and base64 for public data (wrapped keys, digests, certificate fingerprints).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/secret_bytes.h"

namespace coffer::crypto {

std::string to_hex(ByteView bytes);
std::optional<std::vector<std::uint8_t>> from_hex(std::string_view hex);
std::string to_base64(ByteView bytes);
std::optional<std::vector<std::uint8_t>> from_base64(std::string_view b64);

}  // namespace coffer::crypto
