// PolicyStore against a real SqliteStorage: put/get/list/remove, the built-ins, name rules, and
// the Acl cache following writes.
#include <gtest/gtest.h>

#include "auth/policy_store.h"
#include "tests/unit/auth/sqlite_fixture.h"

namespace coffer::auth {
namespace {

class PolicyStoreTest : public coffer::testing::SqliteTest {};

constexpr const char* kWeb = R"(path "secret/web/*" { capabilities = ["read"] })";

TEST_F(PolicyStoreTest, PutGetListRemove) {
  PolicyStore store(*storage_);
  ASSERT_TRUE(store.put("web", kWeb).ok());
  auto got = store.get("web");
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->name, "web");
  EXPECT_EQ(got->text, kWeb);  // the original text, comments and all

  auto names = store.list();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"default", "root", "web"}));

  ASSERT_TRUE(store.remove("web").ok());
  EXPECT_EQ(store.get("web").status().code(), Code::not_found);
  EXPECT_TRUE(store.remove("web").ok());  // idempotent, as Vault's 204
  EXPECT_EQ(*store.list(), (std::vector<std::string>{"default", "root"}));
}

TEST_F(PolicyStoreTest, NamesAreLowercasedAndChecked) {
  PolicyStore store(*storage_);
  ASSERT_TRUE(store.put("Web-App.v1_x", kWeb).ok());
  EXPECT_TRUE(store.get("web-app.v1_x").ok());
  EXPECT_TRUE(store.get("WEB-APP.V1_X").ok());
  for (const char* bad : {"", "a b", "a/b", "é", "x*"}) {
    EXPECT_EQ(store.put(bad, kWeb).code(), Code::invalid_argument) << bad;
  }
  EXPECT_EQ(store.put(std::string(129, 'a'), kWeb).code(), Code::invalid_argument);
  EXPECT_TRUE(store.put(std::string(128, 'a'), kWeb).ok());
}

TEST_F(PolicyStoreTest, InvalidPolicyIsRefusedAndNothingStored) {
  PolicyStore store(*storage_);
  Status s = store.put("bad", "path \"a\" {\n capabilities = [\"reed\"]\n}");
  EXPECT_EQ(s.code(), Code::invalid_argument);
  EXPECT_NE(s.message().find("line 2"), std::string::npos) << s.message();
  EXPECT_EQ(store.get("bad").status().code(), Code::not_found);
}

TEST_F(PolicyStoreTest, UnenforceableConstraintsAreRefusedAndNothingStored) {
  PolicyStore store(*storage_);
  const char* cases[][2] = {
      {"path \"secret/a\" { capabilities = [\"create\"]\n allowed_parameters = { \"foo\" = [] } }", "allowed_parameters"},
      {"path \"secret/a\" { capabilities = [\"create\"]\n denied_parameters = { \"bar\" = [] } }", "denied_parameters"},
      {"path \"secret/a\" { capabilities = [\"create\"]\n required_parameters = [\"foo\"] }", "required_parameters"},
  };
  for (const auto& [text, key] : cases) {
    Status st = store.put("constrained", text);
    ASSERT_FALSE(st.ok()) << text;
    EXPECT_EQ(st.code(), Code::invalid_argument);
    EXPECT_NE(st.message().find(key), std::string::npos) << st.message();
    EXPECT_EQ(store.get("constrained").status().code(), Code::not_found);
  }
}

// The router hands X-Vault-Wrap-TTL to every ACL check, so wrapping TTL bounds are enforced and
// may be stored; the effective bounds are what Acl::wrapping_bounds reports.
TEST_F(PolicyStoreTest, WrappingTtlBoundsAreStoredAndEnforced) {
  PolicyStore store(*storage_);
  ASSERT_TRUE(store.put("bootstrap", "path \"auth/approle/role/web/secret-id\" {\n capabilities = [\"update\"]\n"
                                     " min_wrapping_ttl = \"1s\"\n max_wrapping_ttl = \"90s\"\n}\n")
                  .ok());
  auto acl = store.acl_for({"bootstrap"});
  ASSERT_TRUE(acl.ok()) << acl.status().to_string();
  const char* p = "auth/approle/role/web/secret-id";
  EXPECT_FALSE((*acl)->allows(p, Capability::update));
  EXPECT_TRUE((*acl)->allows(p, Capability::update, AccessRequest{60, nullptr}));
  EXPECT_FALSE((*acl)->allows(p, Capability::update, AccessRequest{91, nullptr}));
  const Acl::WrappingBounds b = (*acl)->wrapping_bounds(p, false);
  EXPECT_EQ(b.min, 1);
  EXPECT_EQ(b.max, 90);
  EXPECT_EQ((*acl)->wrapping_bounds("secret/other", false).min, 0);
}

// The wrapping tokens' policy is reserved: defining it could give wrapping tokens rights.
TEST_F(PolicyStoreTest, ResponseWrappingPolicyIsReserved) {
  PolicyStore store(*storage_);
  for (const char* name : {"response-wrapping", "Response-Wrapping"}) {
    Status st = store.put(name, kWeb);
    EXPECT_EQ(st.code(), Code::invalid_argument) << name;
    EXPECT_NE(st.message().find("reserved"), std::string::npos) << st.message();
  }
  EXPECT_EQ(store.get("response-wrapping").status().code(), Code::not_found);
  // Even a stored one (a database from before the name was reserved) grants nothing.
  ASSERT_TRUE(storage_->put_policy(storage::NamedDocument{"response-wrapping",
                                                          R"({"name":"response-wrapping","policy":"path \"*\" { capabilities = [\"sudo\", \"read\"] }"})"})
                  .ok());
  auto acl = store.acl_for({"response-wrapping"});
  ASSERT_TRUE(acl.ok()) << acl.status().to_string();
  EXPECT_FALSE((*acl)->allows("secret/app/db", Capability::read));
  EXPECT_FALSE((*acl)->is_root());
}

TEST_F(PolicyStoreTest, BuiltIns) {
  PolicyStore store(*storage_);
  EXPECT_EQ(store.put("root", kWeb).code(), Code::invalid_argument);
  EXPECT_EQ(store.remove("root").code(), Code::invalid_argument);
  EXPECT_EQ(store.remove("default").code(), Code::invalid_argument);
  auto def = store.get("default");
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->text, default_policy_text());
  EXPECT_TRUE(store.get("root").ok());

  // default may be edited, as in Vault; the edit takes effect for ACLs.
  auto before = store.acl_for({"default"});
  ASSERT_TRUE(before.ok());
  EXPECT_TRUE((*before)->allows("auth/token/lookup-self", Capability::read));
  ASSERT_TRUE(store.put("default", R"(path "sys/health" { capabilities = ["read"] })").ok());
  auto after = store.acl_for({"default"});
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE((*after)->allows("auth/token/lookup-self", Capability::read));
  EXPECT_TRUE((*after)->allows("sys/health", Capability::read));

  auto root = store.acl_for({"root"});
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE((*root)->is_root());
}

TEST_F(PolicyStoreTest, AclForCachesAndFollowsWrites) {
  PolicyStore store(*storage_);
  ASSERT_TRUE(store.put("web", kWeb).ok());
  auto a = store.acl_for({"web", "default", "missing"});
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE((*a)->allows("secret/web/x", Capability::read));
  EXPECT_TRUE((*a)->allows("auth/token/renew-self", Capability::update));
  // Same set in another order: the cached object.
  auto b = store.acl_for({"default", "WEB", "missing", "web"});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->get(), b->get());

  ASSERT_TRUE(store.put("web", R"(path "secret/web/*" { capabilities = ["list"] })").ok());
  auto c = store.acl_for({"web", "default", "missing"});
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->get(), c->get());
  EXPECT_FALSE((*c)->allows("secret/web/x", Capability::read));
  EXPECT_TRUE((*c)->allows("secret/web/", Capability::list));

  ASSERT_TRUE(store.remove("web").ok());
  auto d = store.acl_for({"web"});
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE((*d)->allows("secret/web/", Capability::list));  // gone: deny by default

  // A second store on the same database sees what the first wrote.
  ASSERT_TRUE(store.put("ops", kWeb).ok());
  PolicyStore other(*storage_);
  auto e = other.acl_for({"ops"});
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE((*e)->allows("secret/web/a", Capability::read));
}

}  // namespace
}  // namespace coffer::auth
