// Vault-style durations: "30s", "15m", "24h", "1h30m", "2d" is not Vault (rejected), or a plain
// number of seconds ("900" or 900). Used by the config file and the API alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace coffer {

// Seconds, or nullopt for malformed, negative or absurd (> 100 years) values.
std::optional<std::int64_t> parse_duration_seconds(std::string_view text);

}  // namespace coffer
