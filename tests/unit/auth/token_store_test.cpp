// TokenStore against a real SqliteStorage with a test clock: token format, lookup, expiry,
// renewal caps, revocation cascade, certificate binding, child rules, root tokens, accessors,
// the lookup-self shape, and that no token ever reaches the database file in plaintext.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "auth/token_store.h"
#include "tests/unit/auth/sqlite_fixture.h"

namespace coffer::auth {
namespace {

constexpr std::int64_t kStart = 1'700'000'000;
const std::string kFp = std::string(64, 'a');
const std::string kOtherFp = std::string(64, 'b');

class TokenStoreTest : public coffer::testing::SqliteTest {
 protected:
  void SetUp() override {
    SqliteTest::SetUp();
    key_ = crypto::SecretBytes(32);
    for (std::size_t i = 0; i < 32; ++i) key_.data(crypto::reveal())[i] = static_cast<std::uint8_t>(i * 7 + 1);
    store_ = std::make_unique<TokenStore>(*storage_, key_, TokenSettings{900, 86400}, [this] { return now_.load(); });
  }

  std::string tok(const IssuedToken& t) { return std::string(t.token.view(crypto::reveal())); }

  IssuedToken issue(TokenSpec spec) {
    auto t = store_->create(spec);
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    return t.ok() ? std::move(t).value() : IssuedToken{};
  }

  std::atomic<std::int64_t> now_{kStart};
  crypto::SecretBytes key_;
  std::unique_ptr<TokenStore> store_;
};

TEST_F(TokenStoreTest, CreateAndLookup) {
  TokenSpec spec;
  spec.policies = {"web", "default", "web"};
  spec.meta = {{"cert_name", "web"}};
  spec.display_name = "cert-web";
  spec.path = "auth/cert/login";
  const IssuedToken t = issue(spec);
  const std::string token = tok(t);
  ASSERT_EQ(token.size(), 4u + 32u);
  EXPECT_EQ(token.substr(0, 4), "hvs.");
  for (char c : token.substr(4)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << token;
  EXPECT_EQ(t.accessor.size(), 24u);
  EXPECT_EQ(t.info.accessor, t.accessor);

  auto info = store_->lookup(token, "");
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  EXPECT_EQ(info->policies, (std::vector<std::string>{"default", "web"}));
  EXPECT_EQ(info->meta.at("cert_name"), "web");
  EXPECT_EQ(info->display_name, "cert-web");
  EXPECT_EQ(info->path, "auth/cert/login");
  EXPECT_EQ(info->creation_time, kStart);
  EXPECT_EQ(info->creation_ttl, 900);
  EXPECT_EQ(info->ttl, 900);
  EXPECT_EQ(info->expire_time, kStart + 900);
  EXPECT_EQ(info->explicit_max_ttl, 86400);
  EXPECT_TRUE(info->orphan);
  EXPECT_TRUE(info->renewable);
  EXPECT_EQ(info->type, "service");

  EXPECT_EQ(store_->lookup("hvs.doesnotexist", "").status().code(), Code::permission_denied);
  EXPECT_EQ(store_->lookup("hvs.doesnotexist", "").status().message(), "permission denied");
  EXPECT_EQ(store_->lookup("", "").status().code(), Code::permission_denied);
  EXPECT_EQ(store_->lookup(std::string(5000, 'x'), "").status().code(), Code::permission_denied);
}

TEST_F(TokenStoreTest, TokensAreUnique) {
  std::set<std::string> tokens, accessors;
  for (int i = 0; i < 50; ++i) {
    const IssuedToken t = issue(TokenSpec{});
    tokens.insert(tok(t));
    accessors.insert(t.accessor);
  }
  EXPECT_EQ(tokens.size(), 50u);
  EXPECT_EQ(accessors.size(), 50u);
}

TEST_F(TokenStoreTest, TtlDefaultsCapsAndExpiry) {
  TokenSpec spec;
  spec.ttl = 100;
  const IssuedToken t = issue(spec);
  now_ += 99;
  auto alive = store_->lookup(tok(t), "");
  ASSERT_TRUE(alive.ok());
  EXPECT_EQ(alive->ttl, 1);
  now_ += 1;  // exactly at expiry: gone
  auto gone = store_->lookup(tok(t), "");
  EXPECT_EQ(gone.status().code(), Code::permission_denied);
  // Deleted on sight: the row is no longer in storage even if the clock went back.
  now_ -= 50;
  EXPECT_FALSE(store_->lookup(tok(t), "").ok());

  TokenSpec huge;
  huge.ttl = 10 * 86400;  // above the system max: capped
  EXPECT_EQ(issue(huge).info.creation_ttl, 86400);
  TokenSpec capped;
  capped.ttl = 3600;
  capped.max_ttl = 600;  // explicit cap below the TTL
  const IssuedToken c = issue(capped);
  EXPECT_EQ(c.info.creation_ttl, 600);
  EXPECT_EQ(c.info.explicit_max_ttl, 600);

  TokenSpec negative;
  negative.ttl = -1;
  EXPECT_EQ(store_->create(negative).status().code(), Code::invalid_argument);
}

TEST_F(TokenStoreTest, RenewIsCappedByMaxTtl) {
  TokenSpec spec;
  spec.ttl = 600;
  spec.max_ttl = 1000;
  const IssuedToken t = issue(spec);
  now_ += 500;
  auto r = store_->renew(tok(t), "", 300);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->ttl, 300);
  EXPECT_EQ(*r->expire_time, kStart + 800);
  now_ += 200;
  auto capped = store_->renew(tok(t), "", 3600);  // would reach kStart+4300: capped at +1000
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(*capped->expire_time, kStart + 1000);
  EXPECT_EQ(capped->ttl, 300);
  auto dflt = store_->renew(tok(t), "", 0);  // increment 0: the creation TTL, still capped
  ASSERT_TRUE(dflt.ok());
  EXPECT_EQ(*dflt->expire_time, kStart + 1000);
  now_ = kStart + 1000;
  EXPECT_EQ(store_->renew(tok(t), "", 60).status().code(), Code::permission_denied);
}

TEST_F(TokenStoreTest, RenewPersistsAndNonRenewableIsRefused) {
  const IssuedToken t = issue(TokenSpec{});
  ASSERT_TRUE(store_->renew(tok(t), "", 3000).ok());
  TokenStore again(*storage_, key_, TokenSettings{900, 86400}, [this] { return now_.load(); });
  auto info = again.lookup(tok(t), "");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->ttl, 3000);

  TokenSpec fixed;
  fixed.renewable = false;
  const IssuedToken f = issue(fixed);
  auto r = store_->renew(tok(f), "", 60);
  EXPECT_EQ(r.status().code(), Code::invalid_argument);
  EXPECT_EQ(r.status().message(), "lease is not renewable");
}

TEST_F(TokenStoreTest, RevokeCascadesToChildren) {
  TokenSpec parent_spec;
  parent_spec.policies = {"a", "b"};
  parent_spec.ttl = 3600;
  const IssuedToken parent = issue(parent_spec);
  TokenSpec child_spec;
  child_spec.policies = {"a"};
  auto child = store_->create_child(tok(parent), "", child_spec);
  ASSERT_TRUE(child.ok()) << child.status().to_string();
  EXPECT_FALSE(child->info.orphan);
  auto grandchild = store_->create_child(tok(*child), "", TokenSpec{});
  ASSERT_TRUE(grandchild.ok()) << grandchild.status().to_string();
  EXPECT_EQ(grandchild->info.policies, std::vector<std::string>{"a"});  // inherited
  const IssuedToken unrelated = issue(TokenSpec{});

  auto n = store_->revoke(tok(parent), "");
  ASSERT_TRUE(n.ok()) << n.status().to_string();
  EXPECT_EQ(*n, 3u);
  EXPECT_FALSE(store_->lookup(tok(parent), "").ok());
  EXPECT_FALSE(store_->lookup(tok(*child), "").ok());
  EXPECT_FALSE(store_->lookup(tok(*grandchild), "").ok());
  EXPECT_TRUE(store_->lookup(tok(unrelated), "").ok());
  EXPECT_EQ(store_->revoke(tok(parent), "").status().code(), Code::permission_denied);
}

TEST_F(TokenStoreTest, RevokingAChildLeavesTheParent) {
  const IssuedToken parent = issue(TokenSpec{});
  auto child = store_->create_child(tok(parent), "", TokenSpec{});
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(store_->revoke(tok(*child), "").ok());
  EXPECT_TRUE(store_->lookup(tok(parent), "").ok());
}

TEST_F(TokenStoreTest, BoundCertificateMismatchIsRefused) {
  TokenSpec spec;
  spec.bound_cert_fingerprint = kFp;
  const IssuedToken t = issue(spec);
  EXPECT_TRUE(store_->lookup(tok(t), kFp).ok());
  EXPECT_TRUE(store_->lookup(tok(t), std::string(64, 'A')).ok());  // hex case does not matter
  auto other = store_->lookup(tok(t), kOtherFp);
  EXPECT_EQ(other.status().code(), Code::permission_denied);
  EXPECT_EQ(other.status().message(), "token is bound to another client certificate");
  EXPECT_EQ(store_->lookup(tok(t), "").status().code(), Code::permission_denied);
  EXPECT_EQ(store_->renew(tok(t), kOtherFp, 60).status().code(), Code::permission_denied);
  EXPECT_EQ(store_->revoke(tok(t), kOtherFp).status().code(), Code::permission_denied);
  EXPECT_EQ(store_->create_child(tok(t), kOtherFp, TokenSpec{}).status().code(), Code::permission_denied);
  EXPECT_TRUE(store_->lookup(tok(t), kFp).ok());  // still there after the refused attempts
  // An unbound token works over any certificate.
  const IssuedToken unbound = issue(TokenSpec{});
  EXPECT_TRUE(store_->lookup(tok(unbound), kOtherFp).ok());
}

TEST_F(TokenStoreTest, AuthenticatedCallerForms) {
  // The API router authenticates with lookup(token, fingerprint) first, then uses these forms.
  TokenSpec spec;
  spec.policies = {"web"};
  spec.bound_cert_fingerprint = kFp;
  const IssuedToken t = issue(spec);
  auto me = store_->lookup(tok(t), kFp);
  ASSERT_TRUE(me.ok());
  TokenSpec child_spec;
  child_spec.policies = {"web"};
  auto child = store_->create_child(*me, child_spec);
  ASSERT_TRUE(child.ok()) << child.status().to_string();
  EXPECT_FALSE(child->info.orphan);
  TokenSpec wider;
  wider.policies = {"db"};
  EXPECT_EQ(store_->create_child(*me, wider).status().message(), "child policies must be subset of parent");
  auto renewed = store_->renew(tok(t), 1200);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->ttl, 1200);
  EXPECT_EQ(store_->renew(tok(t), -1).status().code(), Code::invalid_argument);
  auto n = store_->revoke(tok(t));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  // A revoked parent's TokenInfo can no longer mint children.
  EXPECT_EQ(store_->create_child(*me, child_spec).status().code(), Code::permission_denied);
  EXPECT_EQ(store_->revoke(tok(t)).status().code(), Code::permission_denied);
}

TEST_F(TokenStoreTest, ChildPoliciesMustBeSubsetUnlessRoot) {
  TokenSpec parent_spec;
  parent_spec.policies = {"default", "web"};
  const IssuedToken parent = issue(parent_spec);
  TokenSpec more;
  more.policies = {"web", "db"};
  auto refused = store_->create_child(tok(parent), "", more);
  EXPECT_EQ(refused.status().code(), Code::permission_denied);
  EXPECT_EQ(refused.status().message(), "child policies must be subset of parent");
  TokenSpec escalate;
  escalate.policies = {"root"};
  escalate.no_expiry = true;
  EXPECT_EQ(store_->create_child(tok(parent), "", escalate).status().code(), Code::permission_denied);
  TokenSpec subset;
  subset.policies = {"WEB"};
  EXPECT_TRUE(store_->create_child(tok(parent), "", subset).ok());

  TokenSpec root_spec;
  root_spec.policies = {"root"};
  root_spec.no_expiry = true;
  const IssuedToken root = issue(root_spec);
  auto anything = store_->create_child(tok(root), "", more);
  ASSERT_TRUE(anything.ok()) << anything.status().to_string();
  EXPECT_EQ(anything->info.policies, (std::vector<std::string>{"db", "web"}));
}

TEST_F(TokenStoreTest, ChildNeverOutlivesParent) {
  TokenSpec parent_spec;
  parent_spec.ttl = 600;
  parent_spec.max_ttl = 1200;
  const IssuedToken parent = issue(parent_spec);
  now_ += 100;
  TokenSpec long_child;
  long_child.ttl = 3600;
  auto child = store_->create_child(tok(parent), "", long_child);
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(*child->info.expire_time, kStart + 600);  // the parent's remaining TTL
  EXPECT_EQ(child->info.creation_ttl, 500);
  // Renewing the child cannot pass the parent's current expiry.
  auto r = store_->renew(tok(*child), "", 3600);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r->expire_time, kStart + 600);
  // Once the parent is renewed, the child may follow, up to the parent's hard cap.
  ASSERT_TRUE(store_->renew(tok(parent), "", 5000).ok());  // parent capped at kStart+1200
  auto r2 = store_->renew(tok(*child), "", 5000);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2->expire_time, kStart + 1200);
  // When the parent expires, the sweep takes the child too.
  now_ = kStart + 1200;
  auto swept = store_->sweep_expired();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 2u);
  EXPECT_FALSE(store_->lookup(tok(*child), "").ok());
}

TEST_F(TokenStoreTest, ExpiredParentCannotMintChildren) {
  TokenSpec p;
  p.ttl = 10;
  const IssuedToken parent = issue(p);
  const auto parent_hash = parent.info.token_hash;
  now_ += 10;
  TokenSpec c;
  c.parent = parent_hash;
  EXPECT_EQ(store_->create(c).status().code(), Code::permission_denied);
  EXPECT_EQ(store_->create_child(tok(parent), "", TokenSpec{}).status().code(), Code::permission_denied);
}

TEST_F(TokenStoreTest, RootTokens) {
  TokenSpec spec;
  spec.policies = {"root"};
  spec.no_expiry = true;
  spec.display_name = "root";
  spec.path = "auth/token/root";
  const IssuedToken root = issue(spec);
  now_ += 10 * 365 * 86400LL;
  auto info = store_->lookup(tok(root), "");
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->expire_time.has_value());
  EXPECT_EQ(info->ttl, 0);
  EXPECT_EQ(info->explicit_max_ttl, 0);
  EXPECT_FALSE(info->renewable);
  EXPECT_EQ(info->policies, std::vector<std::string>{"root"});
  EXPECT_EQ(*store_->sweep_expired(), 0u);

  TokenSpec not_root;
  not_root.policies = {"web"};
  not_root.no_expiry = true;
  EXPECT_EQ(store_->create(not_root).status().code(), Code::invalid_argument);

  const nlohmann::json data = token_lookup_data(*info, "hvs.example");
  EXPECT_TRUE(data["expire_time"].is_null());
  EXPECT_EQ(data["ttl"], 0);
  EXPECT_EQ(data["policies"], nlohmann::json::array({"root"}));
}

TEST_F(TokenStoreTest, LookupSelfShape) {
  TokenSpec spec;
  spec.policies = {"default", "web"};
  spec.meta = {{"cert_name", "web"}};
  spec.display_name = "cert-web";
  spec.path = "auth/cert/login";
  const IssuedToken t = issue(spec);
  const nlohmann::json d = token_lookup_data(t.info, tok(t));
  for (const char* key : {"accessor", "creation_time", "creation_ttl", "display_name", "entity_id",
                          "expire_time", "explicit_max_ttl", "id", "issue_time", "meta", "num_uses",
                          "orphan", "path", "policies", "renewable", "ttl", "type"}) {
    EXPECT_TRUE(d.contains(key)) << key;
  }
  EXPECT_EQ(d["id"], tok(t));
  EXPECT_EQ(d["creation_time"], kStart);
  EXPECT_EQ(d["issue_time"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(d["expire_time"], "2023-11-14T22:28:20Z");
  EXPECT_EQ(d["meta"]["cert_name"], "web");
  EXPECT_EQ(d["num_uses"], 0);
  EXPECT_EQ(d["type"], "service");
  EXPECT_TRUE(token_lookup_data(issue(TokenSpec{}).info, "x")["meta"].is_null());
}

TEST_F(TokenStoreTest, Accessors) {
  const IssuedToken t = issue(TokenSpec{});
  auto info = store_->lookup_accessor(t.accessor);
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  EXPECT_EQ(info->accessor, t.accessor);
  EXPECT_EQ(store_->lookup_accessor("nope").status().message(), "invalid accessor");
  // The token itself is not an accessor, nor the other way round (domain-separated hashes).
  EXPECT_FALSE(store_->lookup_accessor(tok(t)).ok());
  EXPECT_FALSE(store_->lookup(t.accessor, "").ok());
  EXPECT_EQ(info->token_hash, t.info.token_hash);
  auto n = store_->revoke_accessor(t.accessor);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_FALSE(store_->lookup(tok(t), "").ok());
}

TEST_F(TokenStoreTest, SweepRemovesOnlyExpired) {
  TokenSpec short_spec;
  short_spec.ttl = 10;
  const IssuedToken a = issue(short_spec);
  const IssuedToken b = issue(short_spec);
  const IssuedToken keep = issue(TokenSpec{});
  now_ += 10;
  auto n = store_->sweep_expired();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  EXPECT_TRUE(store_->lookup(tok(keep), "").ok());
  (void)a;
  (void)b;
}

TEST_F(TokenStoreTest, WrongKeyCannotFindTokens) {
  const IssuedToken t = issue(TokenSpec{});
  crypto::SecretBytes other(32);
  TokenStore wrong(*storage_, other, TokenSettings{}, [this] { return now_.load(); });
  EXPECT_EQ(wrong.lookup(tok(t), "").status().code(), Code::permission_denied);
  TokenStore no_key(*storage_, crypto::SecretBytes(), TokenSettings{}, [this] { return now_.load(); });
  EXPECT_EQ(no_key.create(TokenSpec{}).status().code(), Code::failed_precondition);
}

TEST_F(TokenStoreTest, TokenNeverStoredInPlaintext) {
  std::vector<std::string> tokens;
  for (int i = 0; i < 5; ++i) {
    TokenSpec spec;
    spec.meta = {{"k", "v"}};
    tokens.push_back(tok(issue(spec)));
  }
  auto child = store_->create_child(tokens[0], "", TokenSpec{});
  ASSERT_TRUE(child.ok());
  tokens.push_back(tok(*child));
  ASSERT_TRUE(store_->renew(tokens[1], "", 100).ok());
  const std::string bytes = all_database_bytes();
  ASSERT_GT(bytes.size(), 0u);
  EXPECT_NE(bytes.find("auth/token/create"), std::string::npos)
      << "sanity: the rows are in the bytes we read";
  for (const auto& t : tokens) {
    EXPECT_EQ(bytes.find(t), std::string::npos) << "token found in the database file";
    EXPECT_EQ(bytes.find(t.substr(4)), std::string::npos) << "token body found in the database file";
    EXPECT_EQ(bytes.find(t.substr(4, 16)), std::string::npos) << "token fragment found";
  }
}

TEST_F(TokenStoreTest, CustomInsertStoresTheRowOrHandsOutNothing) {
  TokenSpec spec;
  spec.policies = {"app"};
  std::vector<std::uint8_t> seen_hash;
  auto stored = store_->create(spec, [&](const storage::TokenRow& row) {
    seen_hash = row.token_hash;
    return storage_->insert_token(row);
  });
  ASSERT_TRUE(stored.ok()) << stored.status().to_string();
  EXPECT_EQ(*store_->token_hash(tok(*stored)), seen_hash);
  EXPECT_TRUE(store_->lookup(tok(*stored), "").ok());

  auto refused = store_->create(spec, [](const storage::TokenRow&) {
    return Status(Error(Code::permission_denied, "secret ID already used"));
  });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "secret ID already used");
  EXPECT_EQ(store_->token_hash("").status().code(), Code::permission_denied);
}

}  // namespace
}  // namespace coffer::auth
