#include "auth/login_lockout.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "common/duration.h"
#include "common/log.h"

namespace coffer::auth {
namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;

std::int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string seconds_text(std::int64_t s) {
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

}  // namespace

LoginLockout::LoginLockout(const LockoutSettings& settings, Clock clock)
    : settings_(settings),
      clock_(clock ? std::move(clock) : Clock(&steady_now_ns)),
      duration_ns_(settings.duration_seconds * kNanosPerSecond),
      counter_reset_ns_(settings.counter_reset_seconds * kNanosPerSecond) {}

bool LoginLockout::locked(const Entry& e, std::int64_t now) const {
  return e.failures >= settings_.threshold && now - e.last_failure_ns < duration_ns_;
}

bool LoginLockout::expired(const Entry& e, std::int64_t now) const {
  return !locked(e, now) && now - e.last_failure_ns > counter_reset_ns_;
}

// The wall-clock end of a lockout, for people: the logic itself runs on the monotonic clock so
// that a clock step cannot shorten or stretch a lockout.
std::string LoginLockout::until_text(const Entry& e, std::int64_t now) const {
  const std::int64_t remaining_ns = e.last_failure_ns + duration_ns_ - now;
  const auto until = std::chrono::system_clock::now() + std::chrono::nanoseconds(remaining_ns);
  return format_rfc3339(std::chrono::system_clock::to_time_t(std::chrono::ceil<std::chrono::seconds>(until)));
}

Status LoginLockout::check(std::string_view key) {
  if (!settings_.enabled) return Status::Ok();
  const std::int64_t now = clock_();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || !locked(it->second, now)) return Status::Ok();
  return Error(Code::permission_denied, "login for " + std::string(key) + " is locked out until " +
                                            until_text(it->second, now) + " (" +
                                            std::to_string(it->second.failures) + " failed logins)");
}

bool LoginLockout::make_room(std::int64_t now) {
  std::erase_if(entries_, [&](const auto& kv) { return expired(kv.second, now); });
  if (entries_.size() < settings_.max_entries) return true;
  // Every entry still counts: forget the unlocked one whose last failure is the oldest (it is
  // the closest to being forgotten anyway). Never unlock a key to make room.
  auto oldest = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (locked(it->second, now)) continue;
    if (oldest == entries_.end() || it->second.last_failure_ns < oldest->second.last_failure_ns) oldest = it;
  }
  if (oldest == entries_.end()) return false;
  entries_.erase(oldest);
  return true;
}

bool LoginLockout::record_failure(std::string_view key) {
  if (!settings_.enabled) return false;
  const std::int64_t now = clock_();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= settings_.max_entries && !make_room(now)) {
      // Failing open on the count (the per-identity login rate limit still applies) is better
      // than unlocking someone to make room. Say so, at most once a minute.
      if (!warned_full_ || now - last_full_warning_ns_ > 60 * kNanosPerSecond) {
        warned_full_ = true;
        last_full_warning_ns_ = now;
        log_warning("login lockout: table full of " + std::to_string(entries_.size()) +
                    " locked-out keys; failures for new keys are not counted until some expire "
                    "(a brute-force attempt from many identities?)");
      }
      return false;
    }
    it = entries_.emplace(std::string(key), Entry{}).first;
  }
  Entry& e = it->second;
  if (locked(e, now)) return false;  // refused before the credential check; not counted again
  const bool restart = e.failures == 0 || now - e.last_failure_ns > counter_reset_ns_;
  e.failures = restart ? 1 : e.failures + 1;
  e.last_failure_ns = now;
  if (!locked(e, now)) return false;
  log_warning("login lockout: " + std::string(key) + " is locked out until " + until_text(e, now) + " after " +
              std::to_string(e.failures) + " failed logins within " +
              seconds_text(settings_.counter_reset_seconds) +
              "; its logins are refused until then, even with valid credentials (lockout.threshold, "
              "lockout.duration; restarting cofferd clears it)");
  return true;
}

void LoginLockout::record_success(std::string_view key) {
  if (!settings_.enabled) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = entries_.find(key); it != entries_.end()) entries_.erase(it);
}

std::size_t LoginLockout::sweep() {
  const std::int64_t now = clock_();
  std::lock_guard<std::mutex> lock(mu_);
  return std::erase_if(entries_, [&](const auto& kv) { return expired(kv.second, now); });
}

std::size_t LoginLockout::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace coffer::auth
