// The token lookup cache (auth/token_cache.h) inside TokenStore, on a real SqliteStorage: a hit
// is served without storage, and every change to a stored token (revocation, renewal, expiry,
// revocation of a parent) is seen by the very next lookup; expiry and the certificate binding
// are checked on every hit.
#include "auth/token_cache.h"

#include <gtest/gtest.h>

#include <atomic>

#include "auth/token_store.h"
#include "tests/unit/auth/sqlite_fixture.h"

namespace coffer::auth {
namespace {

constexpr std::int64_t kStart = 1'700'000'000;
const std::string kFp = std::string(64, 'a');
const std::string kOtherFp = std::string(64, 'b');

class TokenCacheTest : public coffer::testing::SqliteTest {
 protected:
  void SetUp() override {
    SqliteTest::SetUp();
    key_ = crypto::SecretBytes(32);
    for (std::size_t i = 0; i < 32; ++i) key_.data(crypto::reveal())[i] = static_cast<std::uint8_t>(i * 5 + 3);
    store_ = std::make_unique<TokenStore>(*storage_, key_, TokenSettings{900, 86400}, [this] { return now_.load(); });
  }

  std::string issue(TokenSpec spec = {}) {
    auto t = store_->create(spec);
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    return t.ok() ? std::string(t->token.view(crypto::reveal())) : std::string();
  }
  std::string child_of(const std::string& parent) {
    auto t = store_->create_child(parent, "", TokenSpec{});
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    return t.ok() ? std::string(t->token.view(crypto::reveal())) : std::string();
  }
  bool live(const std::string& token, const std::string& fp = "") { return store_->lookup(token, fp).ok(); }

  std::atomic<std::int64_t> now_{kStart};
  crypto::SecretBytes key_;
  std::unique_ptr<TokenStore> store_;
};

TEST_F(TokenCacheTest, AHitNeedsNoStorageAndAnyTokenChangeEndsIt) {
  const std::string a = issue();
  const std::string b = issue();
  ASSERT_TRUE(live(a));
  EXPECT_EQ(store_->cached_tokens(), 1u);

  // Delete a's row through another connection to the same file, as a second process would: this
  // store is not told, so a lookup that still succeeds can only have come from the cache.
  {
    auto other = storage::SqliteStorage::open(db_path_, false);
    ASSERT_TRUE(other.ok()) << other.status().to_string();
    auto hash = store_->token_hash(a);
    ASSERT_TRUE(hash.ok());
    ASSERT_EQ(*(*other)->delete_token_tree(*hash), 1u);
  }
  EXPECT_TRUE(live(a)) << "served from the cache (why cofferd holds its database alone)";

  // Any change to any token through this storage (here: revoking b) ends every cached answer.
  ASSERT_TRUE(store_->revoke(b, "").ok());
  EXPECT_FALSE(live(a));
  EXPECT_FALSE(live(b));
}

TEST_F(TokenCacheTest, RevokingAParentEndsItsCachedDescendants) {
  const std::string parent = issue();
  const std::string child = child_of(parent);
  const std::string grandchild = child_of(child);
  const std::string unrelated = issue();
  for (const auto* t : {&parent, &child, &grandchild, &unrelated}) ASSERT_TRUE(live(*t));
  EXPECT_EQ(store_->cached_tokens(), 4u);

  auto n = store_->revoke(parent, "");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3u);
  EXPECT_FALSE(live(parent));
  EXPECT_FALSE(live(child));
  EXPECT_FALSE(live(grandchild));
  EXPECT_TRUE(live(unrelated));
}

TEST_F(TokenCacheTest, RevokeByAccessorAndSweepAreSeenAtOnce) {
  TokenSpec spec;
  spec.ttl = 60;
  const std::string short_lived = issue(spec);
  auto t = store_->create(TokenSpec{});
  ASSERT_TRUE(t.ok());
  const std::string by_accessor(t->token.view(crypto::reveal()));
  ASSERT_TRUE(live(short_lived));
  ASSERT_TRUE(live(by_accessor));

  ASSERT_TRUE(store_->revoke_accessor(t->accessor).ok());
  EXPECT_FALSE(live(by_accessor));

  ASSERT_TRUE(live(short_lived));  // cached again under the new generation
  now_ += 61;
  EXPECT_FALSE(live(short_lived)) << "expiry is checked on every hit";
  now_ -= 61;  // even with the clock back, the sweep-on-sight deleted it
  EXPECT_FALSE(live(short_lived));
}

TEST_F(TokenCacheTest, RenewalIsSeenByTheNextLookupAndTtlCountsDownOnHits) {
  TokenSpec spec;
  spec.ttl = 300;
  const std::string token = issue(spec);
  auto first = store_->lookup(token, "");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->expire_time.has_value());
  EXPECT_EQ(*first->expire_time, kStart + 300);
  EXPECT_EQ(first->ttl, 300);

  now_ += 100;
  auto hit = store_->lookup(token, "");
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->ttl, 200) << "a cached entry's ttl is computed at each lookup";

  ASSERT_TRUE(store_->renew(token, "", 3000).ok());
  auto renewed = store_->lookup(token, "");
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(*renewed->expire_time, kStart + 100 + 3000);
  EXPECT_EQ(renewed->ttl, 3000);
}

TEST_F(TokenCacheTest, TheCertificateBindingIsCheckedOnEveryHit) {
  TokenSpec spec;
  spec.bound_cert_fingerprint = kFp;
  const std::string token = issue(spec);
  ASSERT_TRUE(live(token, kFp));
  ASSERT_EQ(store_->cached_tokens(), 1u);
  auto other = store_->lookup(token, kOtherFp);
  EXPECT_EQ(other.status().code(), Code::permission_denied);
  EXPECT_EQ(other.status().message(), "token is bound to another client certificate");
  EXPECT_FALSE(live(token, ""));
  EXPECT_TRUE(live(token, kFp));
}

TEST(TokenCacheUnit, AnEntryReadBeforeANewerGenerationIsNeverStoredOrServed) {
  TokenCache cache(8);
  const std::vector<std::uint8_t> a(32, 1), b(32, 2);
  TokenInfo info;
  info.accessor = "acc";
  cache.put(a, 5, info);
  ASSERT_TRUE(cache.find(a, 5).has_value());
  EXPECT_FALSE(cache.find(a, 6).has_value()) << "the storage moved on: a miss";
  EXPECT_FALSE(cache.find(a, 4).has_value());

  // A lookup that read its row under generation 4 finishes after one under 5 stored: its row may
  // predate the revocation that moved the generation to 5, so it is dropped.
  cache.put(b, 4, info);
  EXPECT_FALSE(cache.find(b, 4).has_value());
  EXPECT_FALSE(cache.find(b, 5).has_value());

  // A newer generation starts over.
  cache.put(b, 6, info);
  EXPECT_TRUE(cache.find(b, 6).has_value());
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_FALSE(cache.find(a, 6).has_value());
}

TEST(TokenCacheUnit, IsBoundedAndIgnoresMalformedKeys) {
  TokenCache cache(3);
  TokenInfo info;
  for (std::uint8_t i = 0; i < 10; ++i) {
    cache.put(std::vector<std::uint8_t>(32, i), 1, info);
    EXPECT_LE(cache.size(), 3u);
    EXPECT_TRUE(cache.find(std::vector<std::uint8_t>(32, i), 1).has_value()) << "the newest entry is kept";
  }
  cache.put(std::vector<std::uint8_t>(31, 9), 1, info);
  EXPECT_FALSE(cache.find(std::vector<std::uint8_t>(31, 9), 1).has_value());
  TokenCache off(0);
  off.put(std::vector<std::uint8_t>(32, 1), 1, info);
  EXPECT_EQ(off.size(), 0u);
}

}  // namespace
}  // namespace coffer::auth
