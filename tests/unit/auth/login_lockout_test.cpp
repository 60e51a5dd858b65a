// Tests for auth/login_lockout on a fake monotonic clock: Vault's user_lockout semantics
// (threshold, duration from the last counted failure, counter reset, success forgets), isolation
// between keys, the bound on the table and that making room never unlocks anyone.
#include "auth/login_lockout.h"

#include <gtest/gtest.h>

#include <string>

namespace coffer::auth {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

struct FakeClock {
  std::int64_t now = 1000 * kSecond;
  LoginLockout::Clock fn() {
    return [this] { return now; };
  }
};

LockoutSettings settings(std::uint32_t threshold = 3, std::int64_t duration = 60, std::int64_t reset = 60) {
  LockoutSettings s;
  s.threshold = threshold;
  s.duration_seconds = duration;
  s.counter_reset_seconds = reset;
  return s;
}

TEST(LoginLockout, LocksAfterThresholdFailuresEvenForValidCredentials) {
  FakeClock clock;
  LoginLockout lockout(settings(3), clock.fn());
  EXPECT_FALSE(lockout.record_failure("cert:aa"));
  EXPECT_FALSE(lockout.record_failure("cert:aa"));
  EXPECT_TRUE(lockout.check("cert:aa").ok()) << "two failures are below the threshold";
  EXPECT_TRUE(lockout.record_failure("cert:aa")) << "the third failure starts the lockout";
  const Status st = lockout.check("cert:aa");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::permission_denied);
  EXPECT_NE(st.message().find("cert:aa"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("locked out until "), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("3 failed logins"), std::string::npos) << st.message();
}

TEST(LoginLockout, LockoutLastsDurationFromTheFailureThatStartedIt) {
  FakeClock clock;
  LoginLockout lockout(settings(2, 30, 600), clock.fn());
  (void)lockout.record_failure("k");
  clock.now += 5 * kSecond;
  ASSERT_TRUE(lockout.record_failure("k"));
  clock.now += 30 * kSecond - 1;
  EXPECT_FALSE(lockout.check("k").ok());
  // Refused attempts during the lockout do not extend it.
  EXPECT_FALSE(lockout.record_failure("k"));
  clock.now += 1;
  EXPECT_TRUE(lockout.check("k").ok());
}

TEST(LoginLockout, CounterRestartsWhenFailuresAreFurtherApartThanCounterReset) {
  FakeClock clock;
  LoginLockout lockout(settings(3, 60, 10), clock.fn());
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(lockout.record_failure("k")) << i;
    clock.now += 10 * kSecond + 1;  // just past counter_reset each time
  }
  EXPECT_TRUE(lockout.check("k").ok());
  // Within counter_reset of each other, three failures lock.
  (void)lockout.record_failure("k");
  clock.now += 10 * kSecond;
  (void)lockout.record_failure("k");
  clock.now += 10 * kSecond;
  EXPECT_TRUE(lockout.record_failure("k"));
}

TEST(LoginLockout, SuccessForgetsEarlierFailures) {
  FakeClock clock;
  LoginLockout lockout(settings(3), clock.fn());
  (void)lockout.record_failure("k");
  (void)lockout.record_failure("k");
  lockout.record_success("k");
  EXPECT_EQ(lockout.size(), 0u);
  EXPECT_FALSE(lockout.record_failure("k"));
  EXPECT_FALSE(lockout.record_failure("k"));
  EXPECT_TRUE(lockout.check("k").ok());
  EXPECT_TRUE(lockout.record_failure("k"));
}

TEST(LoginLockout, KeysAreIndependent) {
  FakeClock clock;
  LoginLockout lockout(settings(2), clock.fn());
  (void)lockout.record_failure("cert:aa");
  ASSERT_TRUE(lockout.record_failure("cert:aa"));
  EXPECT_FALSE(lockout.check("cert:aa").ok());
  EXPECT_TRUE(lockout.check("cert:bb").ok());
  EXPECT_TRUE(lockout.check("approle:aa").ok());
  EXPECT_FALSE(lockout.record_failure("cert:bb"));
}

// Vault's rule: after the lockout, the count restarts only once counter_reset has passed since
// the last failure; one more failure before that locks again at once.
TEST(LoginLockout, AFailureRightAfterALockoutWithinCounterResetLocksAgain) {
  FakeClock clock;
  LoginLockout lockout(settings(2, 10, 60), clock.fn());
  (void)lockout.record_failure("k");
  ASSERT_TRUE(lockout.record_failure("k"));
  clock.now += 10 * kSecond;
  ASSERT_TRUE(lockout.check("k").ok());
  EXPECT_TRUE(lockout.record_failure("k")) << "a new lockout starts (and is logged again)";
  EXPECT_FALSE(lockout.check("k").ok());
  clock.now += 71 * kSecond;
  EXPECT_FALSE(lockout.record_failure("k")) << "counter_reset passed: counting starts again";
}

TEST(LoginLockout, DisabledNeverLocks) {
  FakeClock clock;
  LockoutSettings s = settings(1);
  s.enabled = false;
  LoginLockout lockout(s, clock.fn());
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(lockout.record_failure("k"));
  EXPECT_TRUE(lockout.check("k").ok());
  EXPECT_EQ(lockout.size(), 0u);
}

TEST(LoginLockout, SweepDropsOnlyEntriesThatNoLongerMatter) {
  FakeClock clock;
  LoginLockout lockout(settings(2, 100, 10), clock.fn());
  (void)lockout.record_failure("counting");
  (void)lockout.record_failure("locked");
  ASSERT_TRUE(lockout.record_failure("locked"));
  EXPECT_EQ(lockout.sweep(), 0u);
  clock.now += 11 * kSecond;
  EXPECT_EQ(lockout.sweep(), 1u) << "the counter of 'counting' has reset; 'locked' is still locked";
  EXPECT_FALSE(lockout.check("locked").ok());
  clock.now += 100 * kSecond;
  EXPECT_EQ(lockout.sweep(), 1u);
  EXPECT_EQ(lockout.size(), 0u);
}

TEST(LoginLockout, TableIsBoundedAndMakingRoomNeverUnlocksAnyone) {
  FakeClock clock;
  LockoutSettings s = settings(2, 600, 600);
  s.max_entries = 4;
  LoginLockout lockout(s, clock.fn());
  // Unlocked entries make room for new keys: the table never grows past its bound.
  for (int i = 0; i < 100; ++i) {
    (void)lockout.record_failure("guess:" + std::to_string(i));
    clock.now += kSecond;
    ASSERT_LE(lockout.size(), 4u);
  }
  // Four locked keys fill it: a new key's failures are not counted, the locks stay.
  for (int i = 0; i < 4; ++i) {
    const std::string key = "locked:" + std::to_string(i);
    (void)lockout.record_failure(key);
    ASSERT_TRUE(lockout.record_failure(key)) << key;
  }
  EXPECT_EQ(lockout.size(), 4u);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(lockout.record_failure("newcomer"));
  EXPECT_TRUE(lockout.check("newcomer").ok());
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(lockout.check("locked:" + std::to_string(i)).ok()) << i;
}

}  // namespace
}  // namespace coffer::auth
