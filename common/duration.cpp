#include "common/duration.h"

namespace coffer {

std::optional<std::int64_t> parse_duration_seconds(std::string_view text) {
  constexpr std::int64_t kMax = 100LL * 365 * 24 * 3600;
  if (text.empty()) return std::nullopt;
  std::int64_t total = 0;
  std::size_t i = 0;
  bool any_unit = false;
  while (i < text.size()) {
    std::int64_t n = 0;
    const std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > kMax) return std::nullopt;
      ++i;
    }
    if (i == start) return std::nullopt;
    if (i == text.size()) {
      if (any_unit) return std::nullopt;  // "1h30" is ambiguous: refuse
      total = n;
      break;
    }
    std::int64_t unit = 0;
    switch (text[i]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      default: return std::nullopt;
    }
    ++i;
    any_unit = true;
    total += n * unit;
    if (total > kMax) return std::nullopt;
  }
  return total;
}

}  // namespace coffer
