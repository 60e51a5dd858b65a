// Token-bucket rate limiting per client identity (the mTLS client certificate's SHA-256
// fingerprint) and per source address, for three classes of requests: logins, reads and writes
// (issue 6, brief §4). Vault's rate-limit quotas (vault-api.md §1.15) are per client IP only;
// coffer adds the certificate because every request carries one, and a unit's certificate is a
// better handle than an address shared by every unit on the same box.
//
// Cost: this runs on every request, so each (class, kind) table is split into shards, each a
// mutex and a hash map; a request takes two shard locks one after the other (never nested) and
// allocates nothing unless its bucket is new.
//
// Memory: every table holds at most `max_buckets` buckets. A bucket that has refilled to its
// burst is equivalent to no bucket at all, so such buckets are dropped first: by sweep() (the
// daemon calls it once a minute) and whenever a shard is full and a new key arrives. When a full
// shard has no full bucket, the bucket closest to full is dropped (its key starts again with a
// full burst): the table stays bounded, new clients keep being served, and the per-identity
// limit still holds for a flood from many addresses. Such evictions are counted (take_stats) so
// the daemon can tell the operator to raise rate_limit.max_buckets or look for the flood.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace coffer::api {

enum class RateClass { login, read, write };
const char* rate_class_name(RateClass c);

// The class of a request, from its normalised method (GET, HEAD, LIST, PUT, DELETE) and its path
// below /v1/. nullopt: exempt (sys/health, sys/seal-status, sys/leader must keep answering
// probes and operators during a flood, as in Vault's default rate_limit_exempt_paths).
// Login: the short form `auth` and `auth/<mount>/login` (also `auth/<mount>/login/<name>`, as
// userpass names the user in the path), whatever the method.
std::optional<RateClass> rate_class(std::string_view method, std::string_view path);

// A token bucket: `burst` requests at once, refilled at `rate` per second.
struct BucketLimit {
  double rate = 1.0;
  double burst = 1.0;
};

struct ClassLimits {
  BucketLimit identity;  // per client certificate
  BucketLimit address;   // per source address (IPv6: per /64)
};

struct RateLimitSettings {
  bool enabled = true;
  ClassLimits login{{1.0, 30}, {10.0, 100}};
  ClassLimits read{{200.0, 1000}, {1000.0, 5000}};
  ClassLimits write{{50.0, 500}, {200.0, 2000}};
  std::size_t max_buckets = 16384;  // per class and kind (six tables)
  std::size_t shards = 64;          // rounded up to a power of two; tests use 1
};

// The answer for one request. retry_after_seconds (> 0 when refused) is the wait, rounded up to
// whole seconds, until the refusing bucket holds one request again.
struct RateDecision {
  bool allowed = true;
  std::int64_t retry_after_seconds = 0;
  const char* refused_by = "";  // "identity" or "address" when refused
};

// Requests refused and active buckets evicted since the last take_stats().
struct RateStats {
  std::uint64_t refused_login = 0;
  std::uint64_t refused_read = 0;
  std::uint64_t refused_write = 0;
  std::uint64_t active_evictions = 0;
};

// The key a source address is limited by: IPv4 as is (also when mapped into IPv6), IPv6 reduced
// to its /64 ("2001:db8:1:2::/64"), since one host usually holds a whole /64 and could otherwise
// make itself a fresh bucket per request. Anything else is used unchanged.
std::string address_key(std::string_view address);

class BucketTable;

class RateLimiter {
 public:
  // Monotonic nanoseconds; tests inject a fake.
  using Clock = std::function<std::int64_t()>;
  static std::int64_t steady_now_ns();

  // `settings` must be valid (rates and bursts positive, burst >= 1, max_buckets >= 1):
  // daemon/config checks them. A default Clock is steady_now_ns.
  explicit RateLimiter(const RateLimitSettings& settings, Clock clock = {});
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes one request from the identity's bucket and then from the address's bucket of `cls`.
  // A request refused by the address bucket gives its identity token back, so a unit behind a
  // flooded address is not also drained by the refusals. Thread-safe.
  RateDecision acquire(RateClass cls, std::string_view identity, std::string_view address);

  // Drops every bucket that has refilled to its burst; returns how many. Thread-safe.
  std::size_t sweep();
  std::size_t size() const;             // buckets held, all tables
  std::size_t capacity_per_table() const;  // the bound on each table's size, <= max_buckets
  RateStats take_stats();
  bool enabled() const { return enabled_; }

 private:
  BucketTable& table(RateClass cls, bool address);

  bool enabled_;
  Clock clock_;
  std::unique_ptr<BucketTable> tables_[3][2];
  std::atomic<std::uint64_t> refused_[3] = {0, 0, 0};
};

}  // namespace coffer::api
