// NonceGuard: parse, window check and atomic record of X-Coffer-Nonce (see nonce_guard.h).
#include "auth/nonce_guard.h"

#include <charconv>

namespace coffer::auth {
namespace {

constexpr std::size_t kMaxTimestampDigits = 18;  // well past year 2100, far from int64 overflow

bool random_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

NonceCheck refused(NonceOutcome outcome, std::string message) { return NonceCheck{outcome, std::move(message)}; }

}  // namespace

Result<NonceCheck> NonceGuard::check_and_record(std::string_view scope, std::string_view nonce) {
  const auto malformed = [] {
    return refused(NonceOutcome::kMalformed,
                   "malformed X-Coffer-Nonce: expected \"<unix-seconds>.<" + std::to_string(kNonceMinRandomChars) +
                       " to " + std::to_string(kNonceMaxRandomChars) + " characters of A-Z a-z 0-9 _ ->\"");
  };
  const std::size_t dot = nonce.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > kMaxTimestampDigits) return malformed();
  const std::string_view stamp = nonce.substr(0, dot);
  const std::string_view random = nonce.substr(dot + 1);
  if (random.size() < kNonceMinRandomChars || random.size() > kNonceMaxRandomChars) return malformed();
  for (char c : random) {
    if (!random_char(c)) return malformed();
  }
  std::int64_t ts = 0;
  const auto [end, ec] = std::from_chars(stamp.data(), stamp.data() + stamp.size(), ts);
  if (ec != std::errc() || end != stamp.data() + stamp.size() || ts < 0 || stamp.front() == '+') return malformed();

  const std::int64_t now = clock_();
  const std::int64_t skew = ts - now;
  if (skew > window_ || skew < -window_) {
    return refused(NonceOutcome::kOutsideWindow,
                   "X-Coffer-Nonce timestamp is " + std::to_string(skew < 0 ? -skew : skew) + "s " +
                       (skew < 0 ? "behind" : "ahead of") + " the server's clock; it must be within " +
                       std::to_string(window_) + "s (check the client's clock, and send a fresh nonce per request)");
  }
  // Remembered until no request carrying this timestamp can be accepted any more.
  COFFER_ASSIGN_OR_RETURN(const bool fresh, storage_.record_nonce(std::string(scope), std::string(random), ts + window_));
  if (!fresh) return refused(NonceOutcome::kReplayed, "request nonce has already been used");
  return NonceCheck{NonceOutcome::kAccepted, {}};
}

Result<std::uint64_t> NonceGuard::sweep() { return storage_.delete_expired_nonces(clock_()); }

}  // namespace coffer::auth
