// NonceGuard: the optional request nonce of state-changing calls (X-Coffer-Nonce, docs/api.md).
// A client that sends one gets "at most once" for that request: the nonce is recorded before the
// request runs, per caller scope (the client certificate), and a second request with the same
// nonce in the same scope is refused as a replay. The timestamp bounds how long a nonce must be
// remembered: one outside the window is refused, so nothing older than the window needs keeping,
// and the sweep drops what has aged out.
//
// Format: "<unix-seconds>.<16-64 characters of [A-Za-z0-9_-]>", e.g.
// "1767225600.Zk3q9V_2mB-xR7pT1sLw". The random part is what is remembered: reusing it within
// the window is a replay even with another timestamp.
//
// Thread-safe (Storage::record_nonce is one atomic statement; no state here).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "auth/token_store.h"
#include "common/status.h"
#include "storage/storage.h"

namespace coffer::auth {

inline constexpr std::int64_t kDefaultNonceWindowSeconds = 300;
inline constexpr std::size_t kNonceMinRandomChars = 16;
inline constexpr std::size_t kNonceMaxRandomChars = 64;

enum class NonceOutcome {
  kAccepted,       // fresh: recorded until its timestamp + window
  kMalformed,      // not "<unix-seconds>.<16-64 of [A-Za-z0-9_-]>"
  kOutsideWindow,  // the timestamp is further than the window from the server's clock
  kReplayed,       // already recorded in this scope
};

struct NonceCheck {
  NonceOutcome outcome = NonceOutcome::kMalformed;
  std::string message;  // why it was refused, safe to show the client (never quotes the nonce)
};

class NonceGuard {
 public:
  // `window_seconds` >= 1: a nonce's timestamp may be that far from the server's clock, either way.
  NonceGuard(storage::Storage& storage, std::int64_t window_seconds = kDefaultNonceWindowSeconds,
             Clock clock = system_clock_seconds)
      : storage_(storage), window_(window_seconds), clock_(std::move(clock)) {}

  // Checks `nonce` (the header value) and, when it is well-formed and within the window, records
  // it for `scope` in one atomic step. The outcome is a value; errors are storage errors only
  // (the caller must then refuse the request: the nonce could not be checked).
  Result<NonceCheck> check_and_record(std::string_view scope, std::string_view nonce);

  // Forgets nonces whose window has passed. Returns how many.
  Result<std::uint64_t> sweep();

  std::int64_t window_seconds() const { return window_; }

 private:
  storage::Storage& storage_;
  std::int64_t window_;
  Clock clock_;
};

}  // namespace coffer::auth
