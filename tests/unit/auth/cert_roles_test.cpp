// CertRoleStore against a real SqliteStorage with certificates generated at test time: write
// validation, Vault's read shape, reload, and login matching (CN, glob CN, DNS SAN, OU, wrong CN,
// wrong CA, expired leaf, named role, first match in name order). Also go-glob semantics.
#include <gtest/gtest.h>

#include "auth/cert_roles.h"
#include "tests/unit/auth/sqlite_fixture.h"
#include "tests/unit/auth/test_pki.h"

namespace coffer::auth {
namespace {

using coffer::testing::make_cert;
using coffer::testing::TestCert;
using nlohmann::json;

TEST(Glob, GoGlobSemantics) {
  struct Row {
    const char* pattern;
    const char* subject;
    bool match;
  };
  for (const Row& r : {
           Row{"", "", true},                 Row{"", "a", false},
           Row{"*", "", true},                Row{"*", "anything", true},
           Row{"web", "web", true},           Row{"web", "Web", false},  // case-sensitive
           Row{"web*", "web01", true},        Row{"web*", "aweb01", false},
           Row{"*.example.com", "a.example.com", true},
           Row{"*.example.com", "a.example.com.evil", false},
           Row{"*.example.com", "example.com", false},
           Row{"a*b*c", "aXbYc", true},       Row{"a*b*c", "abc", true},
           Row{"a*b*c", "acb", false},        Row{"*web*", "my-web-01", true},
           Row{"web*01", "web-01", true},     Row{"web*01", "web-02", false},
       }) {
    EXPECT_EQ(glob_match(r.pattern, r.subject), r.match) << r.pattern << " ~ " << r.subject;
  }
}

class CertRolesTest : public coffer::testing::SqliteTest {
 protected:
  void SetUp() override {
    SqliteTest::SetUp();
    ca_ = make_cert({.cn = "Units CA", .ca = true, .serial = 1});
    other_ca_ = make_cert({.cn = "Other CA", .ca = true, .serial = 1});
    auto s = CertRoleStore::load(*storage_);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    store_ = std::move(s).value();
  }

  json body(json extra) {
    json b = {{"certificate", ca_.pem}};
    if (extra.is_object()) b.update(extra);  // `{}` arrives as null
    return b;
  }

  Result<MatchedRole> login(const TestCert& leaf, std::optional<std::string> role = std::nullopt,
                            std::vector<std::vector<std::uint8_t>> chain = {}, std::string* why = nullptr) {
    auto info = crypto::parse_certificate_der(crypto::ByteView(leaf.der.data(), leaf.der.size()));
    EXPECT_TRUE(info.ok());
    return store_->match(*info, crypto::ByteView(leaf.der.data(), leaf.der.size()), chain, role, why);
  }

  TestCert ca_, other_ca_;
  std::unique_ptr<CertRoleStore> store_;
};

TEST_F(CertRolesTest, WriteReadListDelete) {
  Status w = store_->write("web", body({{"allowed_common_names", "web01.example.internal, web02.example.internal"},
                                        {"token_policies", json::array({"web", "Default", "web"})},
                                        {"token_ttl", "1h"},
                                        {"token_max_ttl", 7200},
                                        {"some_unknown_field", 1}}));
  ASSERT_TRUE(w.ok()) << w.to_string();
  auto r = store_->read("web");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["certificate"], ca_.pem);
  EXPECT_EQ((*r)["allowed_common_names"],
            json::array({"web01.example.internal", "web02.example.internal"}));
  EXPECT_EQ((*r)["token_policies"], json::array({"default", "web"}));
  EXPECT_EQ((*r)["token_ttl"], 3600);
  EXPECT_EQ((*r)["token_max_ttl"], 7200);
  EXPECT_EQ((*r)["display_name"], "web");  // defaults to the role name
  EXPECT_EQ((*r)["allowed_dns_sans"], json::array());
  EXPECT_EQ((*r)["token_type"], "default");
  EXPECT_FALSE(r->contains("some_unknown_field"));

  ASSERT_TRUE(store_->write("db", body({{"policies", "db"}, {"display_name", "database"}})).ok());
  EXPECT_EQ(store_->get("db")->token_policies, std::vector<std::string>{"db"});  // legacy key
  EXPECT_EQ(store_->list(), (std::vector<std::string>{"db", "web"}));

  ASSERT_TRUE(store_->remove("db").ok());
  EXPECT_TRUE(store_->remove("db").ok());
  EXPECT_EQ(store_->read("db").status().code(), Code::not_found);
  EXPECT_EQ(store_->list(), (std::vector<std::string>{"web"}));
}

TEST_F(CertRolesTest, UpdateChangesOnlyGivenFields) {
  ASSERT_TRUE(store_->write("web", body({{"allowed_dns_sans", json::array({"*.internal"})},
                                         {"token_policies", "web"}}))
                  .ok());
  ASSERT_TRUE(store_->write_text("web", R"({"token_ttl": "15m"})").ok());
  auto role = store_->get("web");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(role->certificate, ca_.pem);
  EXPECT_EQ(role->allowed_dns_sans, std::vector<std::string>{"*.internal"});
  EXPECT_EQ(role->token_policies, std::vector<std::string>{"web"});
  EXPECT_EQ(role->token_ttl, 900);
}

TEST_F(CertRolesTest, TokenLifetimeFields) {
  ASSERT_TRUE(store_->write("a", body({{"ttl", "10m"}, {"max_ttl", "2h"}, {"token_explicit_max_ttl", "1h"},
                                       {"token_no_default_policy", "true"}}))
                  .ok());
  auto a = store_->get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->token_ttl, 600);      // legacy "ttl"
  EXPECT_EQ(a->token_max_ttl, 7200); // legacy "max_ttl"
  EXPECT_EQ(a->token_explicit_max_ttl, 3600);
  EXPECT_TRUE(a->token_no_default_policy);
  EXPECT_EQ(a->effective_max_ttl(), 3600);
  // And it survives a reload from storage.
  auto reopened = CertRoleStore::load(*storage_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE((*reopened)->load_warnings().empty());
  EXPECT_EQ((*reopened)->get("a")->effective_max_ttl(), 3600);
  EXPECT_EQ((*reopened)->read("a")->at("token_explicit_max_ttl"), 3600);
  EXPECT_EQ(store_->write_text("a", R"({"ttl": "1m", "token_ttl": "2m"})").code(), Code::invalid_argument);
  CertRole r;
  EXPECT_EQ(r.effective_max_ttl(), 0);
  r.token_max_ttl = 50;
  EXPECT_EQ(r.effective_max_ttl(), 50);
}

TEST_F(CertRolesTest, WriteValidation) {
  struct Case {
    std::string name;
    std::string body;
    const char* words;
  };
  const std::string cert = json(ca_.pem).dump();
  for (const Case& c : std::vector<Case>{
           {"web", R"({})", "missing certificate"},
           {"web", R"({"certificate": "not a pem"})", "failed to parse certificate"},
           {"web", json{{"certificate", ca_.pem + ca_.key_pem}}.dump(), "not a private key"},
           {"web", "[1,2]", "JSON object"},
           {"web", "{bad json", "JSON object"},
           {"web", R"({"certificate": )" + cert + R"(, "token_ttl": "1x"})", "token_ttl"},
           {"web", R"({"certificate": )" + cert + R"(, "token_ttl": -5})", "negative"},
           {"web", R"({"certificate": )" + cert + R"(, "token_ttl": "2h", "token_max_ttl": "1h"})",
            "should not be greater"},
           {"web", R"({"certificate": )" + cert + R"(, "allowed_common_names": 5})", "allowed_common_names"},
           {"web", R"({"certificate": )" + cert + R"(, "allowed_dns_sans": [1]})", "allowed_dns_sans"},
           {"web", R"({"certificate": )" + cert + R"(, "policies": "a", "token_policies": "b"})",
            "cannot specify both"},
           {"web", R"({"certificate": )" + cert + R"(, "token_policies": "a b"})", "invalid policy name"},
           {"web", R"({"certificate": )" + cert + R"(, "required_extensions": ["1.2.3:*"]})", "not supported"},
           {"web", R"({"certificate": )" + cert + R"(, "token_bound_cidrs": "10.0.0.0/8"})", "not supported"},
           {"web", R"({"certificate": )" + cert + R"(, "ocsp_enabled": true})", "not supported"},
           {"web", R"({"certificate": )" + cert + R"(, "token_type": "batch"})", "not supported"},
           {"web", R"({"certificate": )" + cert + R"(, "token_num_uses": 3})", "not supported"},
           {"-web", R"({"certificate": )" + cert + "}", "invalid role name"},
           {"we b", R"({"certificate": )" + cert + "}", "invalid role name"},
           {"", R"({"certificate": )" + cert + "}", "missing role name"},
       }) {
    Status s = store_->write_text(c.name, c.body);
    EXPECT_EQ(s.code(), Code::invalid_argument) << c.body;
    EXPECT_NE(s.message().find(c.words), std::string::npos) << c.body << " -> " << s.message();
  }
  EXPECT_EQ(store_->write("web", json::array({1})).code(), Code::invalid_argument);
  EXPECT_EQ(store_->write("web", json("text")).code(), Code::invalid_argument);
  EXPECT_EQ(store_->write("web", json(nullptr)).message(), "missing certificate");
  EXPECT_TRUE(store_->list().empty());  // nothing was stored
  // Zero values of the restricting fields are fine (clients send defaults).
  EXPECT_TRUE(store_->write("web", body({{"required_extensions", json::array()},
                                         {"token_bound_cidrs", ""},
                                         {"ocsp_enabled", false},
                                         {"token_type", "default"},
                                         {"token_num_uses", 0}}))
                  .ok());
}

TEST_F(CertRolesTest, RolesSurviveReopen) {
  ASSERT_TRUE(store_->write("web", body({{"allowed_common_names", "web*"}})).ok());
  auto reopened = CertRoleStore::load(*storage_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE((*reopened)->load_warnings().empty());
  EXPECT_EQ((*reopened)->list(), std::vector<std::string>{"web"});
  const TestCert leaf = make_cert({.cn = "web01", .serial = 5}, &ca_);
  auto info = crypto::parse_certificate_der(crypto::ByteView(leaf.der.data(), leaf.der.size()));
  ASSERT_TRUE(info.ok());
  auto m = (*reopened)->match(*info, crypto::ByteView(leaf.der.data(), leaf.der.size()), {}, std::nullopt);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->role.name, "web");

  // A corrupt stored role is skipped with a warning, not fatal, and cannot match.
  ASSERT_TRUE(storage_->put_cert_role(storage::NamedDocument{"broken", "{\"certificate\": \"x\"}"}).ok());
  auto again = CertRoleStore::load(*storage_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->list(), std::vector<std::string>{"web"});
  ASSERT_EQ((*again)->load_warnings().size(), 1u);
  EXPECT_NE((*again)->load_warnings()[0].find("broken"), std::string::npos);
}

TEST_F(CertRolesTest, MatchByCommonName) {
  ASSERT_TRUE(store_->write("web", body({{"allowed_common_names", "web01.example.internal"},
                                         {"token_policies", "web"}}))
                  .ok());
  const TestCert good = make_cert({.cn = "web01.example.internal", .serial = 77}, &ca_);
  auto m = login(good);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->role.name, "web");
  EXPECT_EQ(m->role.token_policies, std::vector<std::string>{"web"});
  EXPECT_EQ(m->metadata.at("cert_name"), "web");
  EXPECT_EQ(m->metadata.at("common_name"), "web01.example.internal");
  EXPECT_EQ(m->metadata.at("serial_number"), "77");
  EXPECT_FALSE(m->metadata.at("subject_key_id").empty());
  EXPECT_FALSE(m->metadata.at("authority_key_id").empty());

  // Same CA, wrong CN: the chain verifies but the constraints refuse (Vault's second message).
  const TestCert wrong_cn = make_cert({.cn = "db01.example.internal", .serial = 78}, &ca_);
  auto w = login(wrong_cn);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::invalid_argument);
  EXPECT_EQ(w.status().message(), kNoMatchingConstraints);

  // Right CN, wrong CA: nothing trusts it.
  const TestCert wrong_ca = make_cert({.cn = "web01.example.internal", .serial = 79}, &other_ca_);
  std::string why;
  auto x = login(wrong_ca, std::nullopt, {}, &why);
  ASSERT_FALSE(x.ok());
  EXPECT_EQ(x.status().message(), kInvalidCertificate);
  EXPECT_NE(why.find("unable to get local issuer certificate"), std::string::npos) << why;
}

TEST_F(CertRolesTest, ExpiredLeafIsRefused) {
  ASSERT_TRUE(store_->write("web", body({})).ok());
  const TestCert expired =
      make_cert({.cn = "web", .not_before_offset = -7200, .not_after_offset = -60, .serial = 3}, &ca_);
  std::string why;
  auto m = login(expired, std::nullopt, {}, &why);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(), kInvalidCertificate);
  EXPECT_NE(why.find("certificate has expired"), std::string::npos) << why;
}

TEST_F(CertRolesTest, GlobCnDnsSanOuEmailUri) {
  ASSERT_TRUE(store_->write("globcn", body({{"allowed_common_names", "web*.example.internal"}})).ok());
  ASSERT_TRUE(store_->write("dns", body({{"allowed_dns_sans", json::array({"*.db.internal"})}})).ok());
  ASSERT_TRUE(store_->write("ou", body({{"allowed_organizational_units", "payments"}})).ok());
  ASSERT_TRUE(store_->write("mail", body({{"allowed_email_sans", "*@ops.internal"}})).ok());
  ASSERT_TRUE(store_->write("uri", body({{"allowed_uri_sans", "spiffe://internal/*"}})).ok());

  auto role_of = [&](const TestCert& c, std::optional<std::string> role = std::nullopt) {
    auto m = login(c, std::move(role));
    return m.ok() ? m->role.name : m.status().message();
  };
  EXPECT_EQ(role_of(make_cert({.cn = "web42.example.internal", .serial = 10}, &ca_)), "globcn");
  EXPECT_EQ(role_of(make_cert({.cn = "x", .dns = {"a.db.internal"}, .serial = 11}, &ca_)), "dns");
  EXPECT_EQ(role_of(make_cert({.cn = "x", .dns = {"a.web.internal"}, .serial = 12}, &ca_)),
            kNoMatchingConstraints);
  EXPECT_EQ(role_of(make_cert({.cn = "x", .ous = {"hr", "payments"}, .serial = 13}, &ca_)), "ou");
  EXPECT_EQ(role_of(make_cert({.cn = "x", .emails = {"me@ops.internal"}, .serial = 14}, &ca_)), "mail");
  EXPECT_EQ(role_of(make_cert({.cn = "x", .uris = {"spiffe://internal/app"}, .serial = 15}, &ca_)), "uri");
  // A role with SAN constraints does not match a certificate without SANs.
  EXPECT_EQ(role_of(make_cert({.cn = "x", .serial = 16}, &ca_), "dns"), kNoMatchingConstraints);
}

TEST_F(CertRolesTest, FirstMatchInNameOrderAndNamedRole) {
  // Both accept any certificate from the CA; "alpha" sorts first.
  ASSERT_TRUE(store_->write("zulu", body({{"token_policies", "z"}})).ok());
  ASSERT_TRUE(store_->write("alpha", body({{"token_policies", "a"}})).ok());
  const TestCert leaf = make_cert({.cn = "anything", .serial = 20}, &ca_);
  auto first = login(leaf);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->role.name, "alpha");
  auto named = login(leaf, "zulu");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->role.name, "zulu");
  // A name that does not exist gets the same answer as a bad certificate.
  auto missing = login(leaf, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), kInvalidCertificate);
  // With a name, only that role is tried: "other" trusts another CA.
  ASSERT_TRUE(store_->write("other", json{{"certificate", other_ca_.pem}}).ok());
  EXPECT_EQ(login(leaf, "other").status().message(), kInvalidCertificate);
}

TEST_F(CertRolesTest, ChainThroughIntermediate) {
  const TestCert inter = make_cert({.cn = "Issuing CA", .ca = true, .serial = 30}, &ca_);
  const TestCert leaf = make_cert({.cn = "svc", .serial = 31}, &inter);
  ASSERT_TRUE(store_->write("svc", body({})).ok());  // trusts the root only
  EXPECT_EQ(login(leaf).status().message(), kInvalidCertificate);  // intermediate not sent
  auto m = login(leaf, std::nullopt, {inter.der});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->role.name, "svc");
}

TEST_F(CertRolesTest, DeleteRemovesTrust) {
  ASSERT_TRUE(store_->write("web", body({})).ok());
  const TestCert leaf = make_cert({.cn = "w", .serial = 40}, &ca_);
  EXPECT_TRUE(login(leaf).ok());
  ASSERT_TRUE(store_->remove("web").ok());
  EXPECT_EQ(login(leaf).status().message(), kInvalidCertificate);
}

}  // namespace
}  // namespace coffer::auth
