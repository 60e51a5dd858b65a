// Login lockout (issue 6): after `threshold` failed logins for one key, further logins for that
// key are refused for `duration`, even with valid credentials. Vault's user_lockout semantics
// (vault-api.md §1.15; openbao vault/request_handling.go, failedUserLoginProcess / isUserLocked):
//   - a failure counts one more, unless the previous failure is older than `counter_reset`
//     (then the count starts again at one);
//   - a key is locked while count >= threshold and its last failure is younger than `duration`;
//     refused attempts during the lockout are not counted, so it ends `duration` after the
//     failure that started it;
//   - a successful login forgets the key.
// Keys name an identity per auth method: "cert:<client certificate SHA-256>",
// "approle:<role_id>". They appear in logs and audit records, so a key must never hold a secret
// (a role_id names a role like a user name; a secret_id must never be part of a key).
//
// check() and record_failure() are separate steps around the credential check, so attempts for
// one key that run at the same moment may all pass check() before the failure that locks is
// recorded: at most one extra guess per request thread, and the per-identity login rate limit
// (api/rate_limit.h) bounds them as well.
//
// State is in memory (a restart clears every lockout) and bounded by `max_entries`: entries that
// no longer matter are dropped first; when every entry still matters, the least recent unlocked
// one goes; a table full of locked keys stops counting new keys (logged) rather than unlock one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace coffer::auth {

struct LockoutSettings {
  bool enabled = true;
  std::uint32_t threshold = 5;
  std::int64_t duration_seconds = 15 * 60;
  std::int64_t counter_reset_seconds = 15 * 60;
  std::size_t max_entries = 65536;
};

class LoginLockout {
 public:
  // Monotonic nanoseconds; tests inject a fake. Default: std::chrono::steady_clock.
  using Clock = std::function<std::int64_t()>;

  explicit LoginLockout(const LockoutSettings& settings, Clock clock = {});

  // Before checking credentials. Ok, or permission_denied with a message for the log and the
  // audit record (never for the client: Vault answers a locked login with "permission denied"):
  // "login for <key> is locked out until <UTC time> (<n> failed logins)". Thread-safe.
  Status check(std::string_view key);

  // After credentials were checked and found wrong (not for a malformed request or an internal
  // error: those say nothing about a guess). Returns true when this failure started a lockout;
  // then it has also logged one warning naming the key and until when. Thread-safe.
  bool record_failure(std::string_view key);

  // After a successful login: the key's failures are forgotten. Thread-safe.
  void record_success(std::string_view key);

  // Drops entries that no longer matter (not locked, and the counter would restart); returns
  // how many. The daemon calls it periodically. Thread-safe.
  std::size_t sweep();
  std::size_t size() const;
  bool enabled() const { return settings_.enabled; }

 private:
  struct Entry {
    std::uint32_t failures = 0;
    std::int64_t last_failure_ns = 0;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  bool locked(const Entry& e, std::int64_t now) const;
  bool expired(const Entry& e, std::int64_t now) const;
  // Makes room for one new key at the cap; false when every entry is a live lockout.
  bool make_room(std::int64_t now);
  std::string until_text(const Entry& e, std::int64_t now) const;

  LockoutSettings settings_;
  Clock clock_;
  std::int64_t duration_ns_;
  std::int64_t counter_reset_ns_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
  std::int64_t last_full_warning_ns_ = 0;
  bool warned_full_ = false;
};

}  // namespace coffer::auth
