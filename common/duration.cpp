// Vault-style duration parsing, shared by the config file, auth/ and the API (see duration.h).
#include "common/duration.h"

#include <cmath>
#include <ctime>
#include <limits>
#include <string>

namespace coffer {
namespace {

// Ten years: far above any TTL coffer allows, far below int64 overflow when added to "now".
constexpr double kMaxSeconds = 10.0 * 366 * 24 * 3600;

Status bad(std::string_view text, std::string_view why) {
  return Error(Code::invalid_argument,
               "invalid duration \"" + std::string(text) + "\": " + std::string(why));
}

}  // namespace

Result<std::int64_t> parse_duration(std::string_view text) {
  std::string_view s = text;
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (s.empty()) return std::int64_t{0};
  if (s.front() == '-') return bad(text, "must not be negative");
  if (s.front() == '+') s.remove_prefix(1);

  double total = 0;
  bool any = false;
  while (!s.empty()) {
    // A decimal number, optionally with a fraction.
    std::size_t i = 0;
    double value = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      value = value * 10 + (s[i] - '0');
      digits = true;
      ++i;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      double scale = 0.1;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        value += (s[i] - '0') * scale;
        scale /= 10;
        digits = true;
        ++i;
      }
    }
    if (!digits) return bad(text, "expected a number");
    std::size_t j = i;
    while (j < s.size() && !(s[j] >= '0' && s[j] <= '9') && s[j] != '.') ++j;
    const std::string_view unit = s.substr(i, j - i);
    double factor = 0;
    if (unit.empty()) {
      // A bare number is seconds, but only as the whole string ("90", not "1h30").
      if (any || j != s.size()) return bad(text, "missing unit");
      factor = 1;
    } else if (unit == "ns") {
      factor = 1e-9;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      factor = 1e-6;
    } else if (unit == "ms") {
      factor = 1e-3;
    } else if (unit == "s") {
      factor = 1;
    } else if (unit == "m") {
      factor = 60;
    } else if (unit == "h") {
      factor = 3600;
    } else if (unit == "d") {
      factor = 86400;
    } else {
      return bad(text, "unknown unit \"" + std::string(unit) + "\"");
    }
    total += value * factor;
    if (total > kMaxSeconds) return bad(text, "too large");
    any = true;
    s.remove_prefix(j);
  }
  return static_cast<std::int64_t>(std::floor(total));
}

Result<std::int64_t> parse_duration_value(const nlohmann::json& value) {
  if (value.is_null()) return std::int64_t{0};
  if (value.is_string()) return parse_duration(value.get_ref<const std::string&>());
  if (value.is_number_unsigned()) {
    const auto v = value.get<std::uint64_t>();
    if (static_cast<double>(v) > kMaxSeconds) return bad(value.dump(), "too large");
    return static_cast<std::int64_t>(v);
  }
  if (value.is_number_integer()) {
    const auto v = value.get<std::int64_t>();
    if (v < 0) return bad(value.dump(), "must not be negative");
    if (static_cast<double>(v) > kMaxSeconds) return bad(value.dump(), "too large");
    return v;
  }
  if (value.is_number_float()) {
    const double v = value.get<double>();
    if (!std::isfinite(v) || v < 0) return bad(value.dump(), "must be a non-negative number");
    if (v > kMaxSeconds) return bad(value.dump(), "too large");
    return static_cast<std::int64_t>(std::floor(v));
  }
  return Error(Code::invalid_argument, "a duration must be a number of seconds or a string like \"1h\"");
}

std::string format_rfc3339(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace coffer
