// Durations as Vault accepts them in request bodies and policies (parseutil.ParseDurationSecond):
// a number of seconds (JSON number or digit string) or a Go-style duration string such as "1h",
// "15m", "30s", "1h30m", "1.5h", plus Vault's "d" (days) suffix. Used for the config file, token TTLs, role TTLs
// and policy wrapping TTLs, so every part of auth/ reads "1h" the same way.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace coffer {

// Whole seconds (fractions are truncated, as Vault does). Errors: invalid_argument for empty
// units, unknown units, negative values, overflow, or non-string/non-number JSON.
Result<std::int64_t> parse_duration(std::string_view text);
Result<std::int64_t> parse_duration_value(const nlohmann::json& value);

// Unix seconds as RFC 3339 in UTC ("2026-11-25T21:13:26Z"), the form Vault's JSON uses for times.
std::string format_rfc3339(std::int64_t unix_seconds);

}  // namespace coffer
