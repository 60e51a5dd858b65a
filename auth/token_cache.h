// TokenCache: live tokens already read and parsed, so that a request does not query sqlite and
// parse the token row's policies and metadata again (issue #7: that was ~8 µs of a ~55 µs read).
//
// Correctness rests on storage::Storage::token_generation(): every entry carries the generation
// read before its row was read, and the cache answers only while the storage's generation is
// still that one. Any revocation, renewal, expiry or deletion of any token moves the generation
// after its commit, so the next lookup of every token goes to storage again (revocations are
// rare next to reads; logins only insert and keep the cache). Expiry and the certificate binding
// are still checked by the caller on every hit, against the cached row's values.
//
// Holds no credential: the key is the token's keyed hash (as stored), the value what lookup-self
// shows. Bounded: at `capacity` entries the cache is emptied and refilled by use.
// Thread-safe (a shared mutex: hits take it shared).
#pragma once

#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "auth/token_store.h"
#include "crypto/mac.h"

namespace coffer::auth {

class TokenCache {
 public:
  explicit TokenCache(std::size_t capacity) : capacity_(capacity) {}

  // The entry for `token_hash` if it was stored under `generation` and that is still current.
  std::optional<TokenInfo> find(const std::vector<std::uint8_t>& token_hash, std::uint64_t generation) const {
    Key key;
    if (!to_key(token_hash, key)) return std::nullopt;
    std::shared_lock lock(mu_);
    if (generation != generation_) return std::nullopt;
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    return it->second;
  }

  // Stores `info` read under `generation` (read before the row was). A generation older than
  // the newest seen is dropped (the row may predate a revocation); a newer one empties the cache.
  void put(const std::vector<std::uint8_t>& token_hash, std::uint64_t generation, const TokenInfo& info) {
    Key key;
    if (capacity_ == 0 || !to_key(token_hash, key)) return;
    std::unique_lock lock(mu_);
    if (generation < generation_) return;
    if (generation > generation_ || entries_.size() >= capacity_) {
      entries_.clear();
      generation_ = generation;
    }
    entries_.insert_or_assign(key, info);
  }

  std::size_t size() const {
    std::shared_lock lock(mu_);
    return entries_.size();
  }

 private:
  using Key = crypto::Digest;  // an HMAC-SHA256 token hash
  static bool to_key(const std::vector<std::uint8_t>& token_hash, Key& key) {
    if (token_hash.size() != key.size()) return false;
    std::memcpy(key.data(), token_hash.data(), key.size());
    return true;
  }

  const std::size_t capacity_;
  mutable std::shared_mutex mu_;
  std::uint64_t generation_ = 0;
  std::unordered_map<Key, TokenInfo, crypto::DigestHash> entries_;
};

}  // namespace coffer::auth
