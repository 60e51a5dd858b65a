// Tests for api/rate_limit: token buckets per client certificate and per source address, on a
// fake monotonic clock. Burst, refill, Retry-After rounding, isolation between keys and classes,
// exempt paths, IPv6 /64 grouping, the bound on the table size and what is evicted at it, and
// that concurrent requests never take more than the burst.
#include "api/rate_limit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace coffer::api {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;
constexpr const char* kAddr = "192.0.2.10";

// Limits that never get in the way of the dimension under test.
constexpr BucketLimit kHuge{1e6, 1e6};

struct FakeClock {
  std::int64_t now = 1000 * kSecond;
  RateLimiter::Clock fn() {
    return [this] { return now; };
  }
};

RateLimitSettings settings_with(ClassLimits login, ClassLimits read = {kHuge, kHuge},
                                ClassLimits write = {kHuge, kHuge}) {
  RateLimitSettings s;
  s.login = login;
  s.read = read;
  s.write = write;
  return s;
}

TEST(RateClass, ExemptLoginReadWrite) {
  for (const char* path : {"sys/health", "sys/seal-status", "sys/leader"}) {
    EXPECT_FALSE(rate_class("GET", path).has_value()) << path;
    EXPECT_FALSE(rate_class("HEAD", path).has_value()) << path;
    EXPECT_FALSE(rate_class("PUT", path).has_value()) << path;
  }
  for (const char* path : {"auth", "auth/cert/login", "auth/approle/login", "auth/userpass/login/alice",
                           "auth/ldap/login"}) {
    EXPECT_EQ(rate_class("PUT", path), RateClass::login) << path;
    EXPECT_EQ(rate_class("GET", path), RateClass::login) << path;  // a 405, still a login attempt
  }
  for (const char* path : {"auth/token/lookup-self", "auth/cert/certs/web", "auth/login", "auth//login",
                           "auth/cert/loginx", "sys/health/", "secret/app/db"}) {
    EXPECT_EQ(rate_class("GET", path), RateClass::read) << path;
    EXPECT_EQ(rate_class("PUT", path), RateClass::write) << path;
  }
  EXPECT_EQ(rate_class("LIST", "secret/app/"), RateClass::read);
  EXPECT_EQ(rate_class("HEAD", "secret/app/db"), RateClass::read);
  EXPECT_EQ(rate_class("DELETE", "secret/app/db"), RateClass::write);
}

TEST(RateLimiter, BurstThenRefusedWithRetryAfter) {
  FakeClock clock;
  RateLimiter limiter(settings_with({{1.0, 3}, kHuge}), clock.fn());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.acquire(RateClass::login, "cert-a", kAddr).allowed) << i;
  const RateDecision d = limiter.acquire(RateClass::login, "cert-a", kAddr);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_seconds, 1);
  EXPECT_STREQ(d.refused_by, "identity");
}

TEST(RateLimiter, RefillsAtTheConfiguredRate) {
  FakeClock clock;
  RateLimiter limiter(settings_with({{2.0, 2}, kHuge}), clock.fn());
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  EXPECT_FALSE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  clock.now += kSecond / 2 - 1;  // not quite one request's worth at 2/s
  EXPECT_FALSE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  clock.now += 1;
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  EXPECT_FALSE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  // A long pause refills to the burst, never beyond it.
  clock.now += 3600 * kSecond;
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  EXPECT_FALSE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
}

TEST(RateLimiter, RetryAfterIsWholeSecondsRoundedUp) {
  FakeClock clock;
  RateLimiter limiter(settings_with({{0.4, 1}, kHuge}), clock.fn());  // one per 2.5 s
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  RateDecision d = limiter.acquire(RateClass::login, "c", kAddr);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_seconds, 3);
  clock.now += 2 * kSecond;  // 0.5 s to go: still rounded up to 1
  d = limiter.acquire(RateClass::login, "c", kAddr);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_seconds, 1);
  clock.now += kSecond / 2;
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
}

TEST(RateLimiter, KeysAndClassesAreIsolated) {
  FakeClock clock;
  RateLimiter limiter(settings_with({{1.0, 1}, kHuge}, {{1.0, 1}, kHuge}, {{1.0, 1}, kHuge}), clock.fn());
  EXPECT_TRUE(limiter.acquire(RateClass::login, "cert-a", kAddr).allowed);
  EXPECT_FALSE(limiter.acquire(RateClass::login, "cert-a", kAddr).allowed);
  // Another certificate, and the same certificate in another class, are untouched.
  EXPECT_TRUE(limiter.acquire(RateClass::login, "cert-b", kAddr).allowed);
  EXPECT_TRUE(limiter.acquire(RateClass::read, "cert-a", kAddr).allowed);
  EXPECT_TRUE(limiter.acquire(RateClass::write, "cert-a", kAddr).allowed);
  EXPECT_FALSE(limiter.acquire(RateClass::read, "cert-a", kAddr).allowed);
}

TEST(RateLimiter, AddressLimitCoversManyCertificatesAndGivesIdentityTokensBack) {
  FakeClock clock;
  RateLimiter limiter(settings_with({{1.0, 1}, {1.0, 2}}), clock.fn());
  EXPECT_TRUE(limiter.acquire(RateClass::login, "cert-a", kAddr).allowed);
  EXPECT_TRUE(limiter.acquire(RateClass::login, "cert-b", kAddr).allowed);
  const RateDecision d = limiter.acquire(RateClass::login, "cert-c", kAddr);
  EXPECT_FALSE(d.allowed);
  EXPECT_STREQ(d.refused_by, "address");
  // cert-c's own bucket was not charged for the refusal: from another address it still may.
  EXPECT_TRUE(limiter.acquire(RateClass::login, "cert-c", "192.0.2.11").allowed);
  EXPECT_FALSE(limiter.acquire(RateClass::login, "cert-c", "192.0.2.12").allowed);
}

TEST(RateLimiter, Ipv6IsLimitedPerSlash64) {
  EXPECT_EQ(address_key("192.0.2.1"), "192.0.2.1");
  EXPECT_EQ(address_key("::ffff:192.0.2.1"), "192.0.2.1");
  EXPECT_EQ(address_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(address_key("2001:db8:1:2::ffff"), "2001:db8:1:2::/64");
  EXPECT_EQ(address_key("::1"), "::/64");
  EXPECT_EQ(address_key("not-an-address"), "not-an-address");
  EXPECT_EQ(address_key("zz::zz"), "zz::zz");

  FakeClock clock;
  RateLimiter limiter(settings_with({kHuge, {1.0, 1}}), clock.fn());
  EXPECT_TRUE(limiter.acquire(RateClass::login, "a", "2001:db8:1:2::1").allowed);
  EXPECT_FALSE(limiter.acquire(RateClass::login, "b", "2001:db8:1:2::99").allowed);
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", "2001:db8:1:3::1").allowed);
}

TEST(RateLimiter, DisabledAllowsEverything) {
  FakeClock clock;
  RateLimitSettings s = settings_with({{1.0, 1}, {1.0, 1}});
  s.enabled = false;
  RateLimiter limiter(s, clock.fn());
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.acquire(RateClass::login, "c", kAddr).allowed);
  EXPECT_EQ(limiter.size(), 0u);
}

TEST(RateLimiter, StatsCountRefusalsPerClassAndReset) {
  FakeClock clock;
  RateLimiter limiter(settings_with({{1.0, 1}, kHuge}, {{1.0, 1}, kHuge}), clock.fn());
  for (int i = 0; i < 3; ++i) (void)limiter.acquire(RateClass::login, "c", kAddr);
  for (int i = 0; i < 2; ++i) (void)limiter.acquire(RateClass::read, "c", kAddr);
  RateStats st = limiter.take_stats();
  EXPECT_EQ(st.refused_login, 2u);
  EXPECT_EQ(st.refused_read, 1u);
  EXPECT_EQ(st.refused_write, 0u);
  st = limiter.take_stats();
  EXPECT_EQ(st.refused_login + st.refused_read, 0u);
}

TEST(RateLimiter, SweepDropsOnlyFullBuckets) {
  FakeClock clock;
  RateLimiter limiter(settings_with({{1.0, 5}, {1.0, 5}}), clock.fn());
  (void)limiter.acquire(RateClass::login, "c", kAddr);
  EXPECT_EQ(limiter.size(), 2u);  // one per certificate, one per address
  EXPECT_EQ(limiter.sweep(), 0u);  // one request short of full
  clock.now += kSecond;
  EXPECT_EQ(limiter.sweep(), 2u);
  EXPECT_EQ(limiter.size(), 0u);
}

// A flood from many addresses (one request each) must not grow the tables past their cap; at the
// cap a new key first takes the place of buckets that refilled, and only when there are none the
// place of the one closest to full (counted as an active eviction).
TEST(RateLimiter, TableSizeIsBoundedAndFullBucketsGoFirst) {
  FakeClock clock;
  RateLimitSettings s = settings_with({kHuge, {1.0, 10}});
  s.max_buckets = 8;
  s.shards = 1;
  RateLimiter limiter(s, clock.fn());
  EXPECT_EQ(limiter.capacity_per_table(), 8u);
  for (int i = 0; i < 1000; ++i) {
    const std::string addr = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    EXPECT_TRUE(limiter.acquire(RateClass::login, "one-cert", addr).allowed) << addr;
    ASSERT_LE(limiter.size(), 1u + 8u) << i;  // the certificate's bucket + at most 8 addresses
    clock.now += kSecond / 1000;
  }
  EXPECT_EQ(limiter.take_stats().active_evictions, 1000u - 8u);

  // Once the buckets have refilled, new keys replace them without evicting anyone active.
  clock.now += 10 * kSecond;
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(limiter.acquire(RateClass::login, "one-cert", "172.16.0." + std::to_string(i)).allowed);
  }
  EXPECT_LE(limiter.size(), 9u);
  // Of the 100, only the ones that found no refilled bucket evicted an active one.
  EXPECT_LE(limiter.take_stats().active_evictions, 100u - 8u);
}

TEST(RateLimiter, EvictionAtTheCapKeepsDrainedBucketsOverFullerOnes) {
  FakeClock clock;
  RateLimitSettings s = settings_with({kHuge, {1.0, 3}});
  s.max_buckets = 2;
  s.shards = 1;
  RateLimiter limiter(s, clock.fn());
  // "drained" uses its whole burst; "light" one request.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.acquire(RateClass::login, "c", "192.0.2.1").allowed);
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", "192.0.2.2").allowed);
  // A third address needs room: the light bucket is the closest to full and goes.
  EXPECT_TRUE(limiter.acquire(RateClass::login, "c", "192.0.2.3").allowed);
  EXPECT_FALSE(limiter.acquire(RateClass::login, "c", "192.0.2.1").allowed) << "the drained bucket was evicted";
}

TEST(RateLimiter, CapacityNeverExceedsMaxBucketsWhateverTheShards) {
  RateLimitSettings s;
  s.max_buckets = 100;
  s.shards = 64;
  RateLimiter limiter(s);
  EXPECT_LE(limiter.capacity_per_table(), 100u);
  EXPECT_GE(limiter.capacity_per_table(), 64u);
  s.max_buckets = 3;
  RateLimiter tiny(s);
  EXPECT_LE(tiny.capacity_per_table(), 3u);
}

// Many threads on one key: exactly `burst` requests get through, never more.
TEST(RateLimiter, ConcurrentRequestsNeverExceedTheBurst) {
  FakeClock clock;  // frozen: no refill during the test
  RateLimiter limiter(settings_with({{1.0, 500}, kHuge}), clock.fn());
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (limiter.acquire(RateClass::login, "shared-cert", kAddr).allowed) allowed.fetch_add(1);
        (void)limiter.acquire(RateClass::login, "own-" + std::to_string(i), kAddr);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 500);
}

}  // namespace
}  // namespace coffer::api
