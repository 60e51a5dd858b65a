#include "api/rate_limit.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace coffer::api {
namespace {

constexpr double kNanosPerSecond = 1e9;
// Refill arithmetic is in doubles: a bucket that is one request short by rounding error only
// (0.9999999999) must not refuse a request the configuration allows.
constexpr double kEpsilon = 1e-9;

bool is_login_path(std::string_view path) {
  if (path == "auth") return true;
  constexpr std::string_view kAuth = "auth/";
  if (path.substr(0, kAuth.size()) != kAuth) return false;
  const std::string_view rest = path.substr(kAuth.size());
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  const std::string_view after = rest.substr(slash + 1);
  return after == "login" || after.substr(0, 6) == "login/";
}

std::size_t floor_pow2(std::size_t n) {
  std::size_t p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

}  // namespace

const char* rate_class_name(RateClass c) {
  switch (c) {
    case RateClass::login: return "login";
    case RateClass::read: return "read";
    case RateClass::write: return "write";
  }
  return "?";
}

std::optional<RateClass> rate_class(std::string_view method, std::string_view path) {
  if (path == "sys/health" || path == "sys/seal-status" || path == "sys/leader") return std::nullopt;
  if (is_login_path(path)) return RateClass::login;
  if (method == "GET" || method == "HEAD" || method == "LIST") return RateClass::read;
  return RateClass::write;
}

std::string address_key(std::string_view address) {
  if (address.find(':') == std::string_view::npos || address.size() >= INET6_ADDRSTRLEN) {
    return std::string(address);
  }
  char text[INET6_ADDRSTRLEN + 4] = {};
  std::memcpy(text, address.data(), address.size());
  in6_addr a{};
  if (inet_pton(AF_INET6, text, &a) != 1) return std::string(address);
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    in_addr v4{};
    std::memcpy(&v4, &a.s6_addr[12], 4);
    if (inet_ntop(AF_INET, &v4, text, sizeof text) == nullptr) return std::string(address);
    return text;
  }
  std::memset(&a.s6_addr[8], 0, 8);
  if (inet_ntop(AF_INET6, &a, text, sizeof text) == nullptr) return std::string(address);
  return std::string(text) + "/64";
}

// One (class, kind) table: buckets by key, in shards. All times are monotonic nanoseconds.
class BucketTable {
 public:
  BucketTable(BucketLimit limit, std::size_t max_buckets, std::size_t shards)
      : rate_(limit.rate), burst_(limit.burst) {
    // Never more shards than buckets, so shards * per-shard cap stays <= max_buckets.
    const std::size_t n = floor_pow2(std::max<std::size_t>(1, std::min(shards, max_buckets)));
    shard_mask_ = n - 1;
    per_shard_cap_ = std::max<std::size_t>(1, max_buckets / n);
    shards_ = std::make_unique<Shard[]>(n);
  }

  // 0 when a request was taken, else the nanoseconds until the bucket holds one again.
  std::int64_t take(std::string_view key, std::int64_t now) {
    Shard& s = shard_for(key);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(key);
    if (it == s.map.end()) {
      if (s.map.size() >= per_shard_cap_) make_room(s, now);
      it = s.map.emplace(std::string(key), Bucket{burst_, now}).first;
    }
    Bucket& b = it->second;
    const double tokens = refilled(b, now);
    b.last_ns = std::max(b.last_ns, now);
    if (tokens >= 1.0 - kEpsilon) {
      b.tokens = std::max(0.0, tokens - 1.0);
      return 0;
    }
    b.tokens = tokens;
    const double wait = std::ceil((1.0 - tokens) * kNanosPerSecond / rate_);
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(wait));
  }

  void give_back(std::string_view key) {
    Shard& s = shard_for(key);
    std::lock_guard<std::mutex> lock(s.mu);
    if (auto it = s.map.find(key); it != s.map.end()) {
      it->second.tokens = std::min(burst_, it->second.tokens + 1.0);
    }
  }

  std::size_t sweep(std::int64_t now) {
    std::size_t removed = 0;
    for (std::size_t i = 0; i <= shard_mask_; ++i) {
      Shard& s = shards_[i];
      std::lock_guard<std::mutex> lock(s.mu);
      removed += std::erase_if(s.map, [&](const auto& kv) { return is_full(kv.second, now); });
    }
    return removed;
  }

  std::size_t size() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i <= shard_mask_; ++i) {
      std::lock_guard<std::mutex> lock(shards_[i].mu);
      n += shards_[i].map.size();
    }
    return n;
  }

  std::size_t capacity() const { return per_shard_cap_ * (shard_mask_ + 1); }
  std::uint64_t take_active_evictions() { return active_evictions_.exchange(0); }

 private:
  struct Bucket {
    double tokens;
    std::int64_t last_ns;
  };
  // Transparent, so a lookup by string_view allocates nothing.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // One cache line or more each, so two shards' mutexes never share a line.
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Bucket, Hash, std::equal_to<>> map;
  };

  Shard& shard_for(std::string_view key) {
    const std::size_t h = Hash{}(key);
    // The map itself uses h modulo a prime; the shard takes the high bits.
    return shards_[(h >> 32 ^ h >> 16) & shard_mask_];
  }

  double refilled(const Bucket& b, std::int64_t now) const {
    if (now <= b.last_ns) return b.tokens;
    const double t = b.tokens + static_cast<double>(now - b.last_ns) * rate_ / kNanosPerSecond;
    return std::min(t, burst_);
  }

  bool is_full(const Bucket& b, std::int64_t now) const { return refilled(b, now) >= burst_ - kEpsilon; }

  // The shard is at its cap and a new key arrives: drop every bucket that is full (as good as
  // absent); if there is none, drop the one closest to full. O(shard size), only at the cap.
  void make_room(Shard& s, std::int64_t now) {
    auto fullest = s.map.end();
    double best = -1.0;
    std::size_t removed = 0;
    for (auto it = s.map.begin(); it != s.map.end();) {
      const double t = refilled(it->second, now);
      if (t >= burst_ - kEpsilon) {
        it = s.map.erase(it);
        ++removed;
        continue;
      }
      if (t > best) {
        best = t;
        fullest = it;
      }
      ++it;
    }
    if (removed == 0 && fullest != s.map.end()) {
      s.map.erase(fullest);
      active_evictions_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  const double rate_;
  const double burst_;
  std::size_t shard_mask_ = 0;
  std::size_t per_shard_cap_ = 1;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::uint64_t> active_evictions_{0};
};

std::int64_t RateLimiter::steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

RateLimiter::RateLimiter(const RateLimitSettings& settings, Clock clock)
    : enabled_(settings.enabled), clock_(clock ? std::move(clock) : Clock(&RateLimiter::steady_now_ns)) {
  const ClassLimits* limits[3] = {&settings.login, &settings.read, &settings.write};
  for (int c = 0; c < 3; ++c) {
    tables_[c][0] = std::make_unique<BucketTable>(limits[c]->identity, settings.max_buckets, settings.shards);
    tables_[c][1] = std::make_unique<BucketTable>(limits[c]->address, settings.max_buckets, settings.shards);
  }
}

RateLimiter::~RateLimiter() = default;

BucketTable& RateLimiter::table(RateClass cls, bool address) {
  return *tables_[static_cast<int>(cls)][address ? 1 : 0];
}

RateDecision RateLimiter::acquire(RateClass cls, std::string_view identity, std::string_view address) {
  if (!enabled_) return {};
  const std::int64_t now = clock_();
  auto refuse = [&](std::int64_t wait_ns, const char* by) {
    refused_[static_cast<int>(cls)].fetch_add(1, std::memory_order_relaxed);
    const std::int64_t seconds = (wait_ns + 999'999'999) / 1'000'000'000;
    return RateDecision{false, std::max<std::int64_t>(1, seconds), by};
  };
  BucketTable& by_identity = table(cls, false);
  if (const std::int64_t wait = by_identity.take(identity, now); wait != 0) return refuse(wait, "identity");
  const std::string addr = address_key(address);
  if (const std::int64_t wait = table(cls, true).take(addr, now); wait != 0) {
    by_identity.give_back(identity);
    return refuse(wait, "address");
  }
  return {};
}

std::size_t RateLimiter::sweep() {
  const std::int64_t now = clock_();
  std::size_t removed = 0;
  for (auto& per_class : tables_) {
    for (auto& t : per_class) removed += t->sweep(now);
  }
  return removed;
}

std::size_t RateLimiter::size() const {
  std::size_t n = 0;
  for (const auto& per_class : tables_) {
    for (const auto& t : per_class) n += t->size();
  }
  return n;
}

std::size_t RateLimiter::capacity_per_table() const { return tables_[0][0]->capacity(); }

RateStats RateLimiter::take_stats() {
  RateStats s;
  s.refused_login = refused_[0].exchange(0);
  s.refused_read = refused_[1].exchange(0);
  s.refused_write = refused_[2].exchange(0);
  for (auto& per_class : tables_) {
    for (auto& t : per_class) s.active_evictions += t->take_active_evictions();
  }
  return s;
}

}  // namespace coffer::api
