// AppRoleStore against a real SqliteStorage and TokenStore with a test clock: role validation,
// role_id handling, secret-ID bounds and format, CIDR restrictions, metadata, the login outcomes,
// replays (revoking the first use's tokens and their children), the tombstone's lifetime, the
// lockout's replay-only mode, secret-ID administration, and concurrent logins with one single-use
// secret ID (exactly one token).
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <set>
#include <thread>

#include "audit/redact.h"
#include "auth/approle.h"
#include "auth/cidr.h"
#include "tests/unit/auth/sqlite_fixture.h"

namespace coffer::auth {
namespace {

using nlohmann::json;

constexpr std::int64_t kStart = 1'700'000'000;
const std::string kFp = std::string(64, 'a');
const std::string kOtherFp = std::string(64, 'b');

class AppRoleTest : public coffer::testing::SqliteTest {
 protected:
  void SetUp() override {
    SqliteTest::SetUp();
    key_ = crypto::SecretBytes(32);
    for (std::size_t i = 0; i < 32; ++i) key_.data(crypto::reveal())[i] = static_cast<std::uint8_t>(i * 5 + 3);
    Clock clock = [this] { return now_.load(); };
    tokens_ = std::make_unique<TokenStore>(*storage_, key_, TokenSettings{900, 86400}, clock);
    store_ = std::make_unique<AppRoleStore>(*storage_, *tokens_, clock);
  }

  void write(const std::string& name, const json& body) {
    Status st = store_->write_role(name, body);
    ASSERT_TRUE(st.ok()) << st.to_string();
  }
  std::string role_id(const std::string& name) {
    auto r = store_->get_role(name);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->role_id : "";
  }
  GeneratedSecretId secret(const std::string& role, const json& body = json::object()) {
    auto g = store_->generate_secret_id(role, body);
    EXPECT_TRUE(g.ok()) << g.status().to_string();
    return g.ok() ? std::move(g).value() : GeneratedSecretId{};
  }
  static std::string text(const GeneratedSecretId& g) { return std::string(g.secret_id.view(crypto::reveal())); }

  AppRoleLoginResult login(const std::string& rid, const std::string& sid, const std::string& address = "127.0.0.1",
                           bool replay_check_only = false) {
    auto r = store_->login(AppRoleLoginRequest{rid, sid, address, kFp, replay_check_only});
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : AppRoleLoginResult{};
  }
  static std::string token(const AppRoleLoginResult& r) {
    return r.token ? std::string(r.token->token.view(crypto::reveal())) : std::string();
  }
  bool alive(const std::string& t) { return tokens_->lookup(t, kFp).ok(); }

  std::atomic<std::int64_t> now_{kStart};
  crypto::SecretBytes key_;
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<AppRoleStore> store_;
};

// --- roles ---

TEST_F(AppRoleTest, CreateReadAndDefaults) {
  write("web", {{"token_policies", "web, db"}, {"secret_id_num_uses", 1}, {"secret_id_ttl", "10m"},
                {"token_ttl", 600}, {"token_max_ttl", "1h"}});
  auto doc = store_->read_role("web");
  ASSERT_TRUE(doc.ok()) << doc.status().to_string();
  EXPECT_EQ((*doc)["bind_secret_id"], true);
  EXPECT_EQ((*doc)["secret_id_num_uses"], 1);
  EXPECT_EQ((*doc)["secret_id_ttl"], 600);
  EXPECT_EQ((*doc)["token_ttl"], 600);
  EXPECT_EQ((*doc)["token_max_ttl"], 3600);
  EXPECT_EQ((*doc)["token_policies"], json::array({"db", "web"}));
  EXPECT_EQ((*doc)["policies"], json::array({"db", "web"}));
  EXPECT_EQ((*doc)["token_type"], "default");
  EXPECT_EQ((*doc)["token_num_uses"], 0);
  EXPECT_FALSE(doc->contains("role_id"));  // as in Vault: it has its own endpoint

  const std::string id = role_id("web");
  ASSERT_EQ(id.size(), 36u) << id;
  EXPECT_EQ(id[8], '-');
  EXPECT_EQ(id[13], '-');
  write("web2", json::object());
  EXPECT_NE(role_id("web2"), id);

  auto listed = store_->list_roles();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, (std::vector<std::string>{"web", "web2"}));
  EXPECT_EQ(store_->read_role("nope").status().code(), Code::not_found);
}

TEST_F(AppRoleTest, UpdateChangesOnlyTheFieldsGivenAndKeepsTheRoleId) {
  write("web", {{"token_policies", {"web"}}, {"secret_id_num_uses", 3}});
  const std::string id = role_id("web");
  write("web", {{"token_ttl", "5m"}});
  auto role = store_->get_role("web");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(role->role_id, id);
  EXPECT_EQ(role->token_policies, std::vector<std::string>{"web"});
  EXPECT_EQ(role->secret_id_num_uses, 3);
  EXPECT_EQ(role->token_ttl, 300);
  write("web", {{"policies", "legacy"}});  // the legacy spelling
  EXPECT_EQ(store_->get_role("web")->token_policies, std::vector<std::string>{"legacy"});
}

TEST_F(AppRoleTest, RoleValidationErrors) {
  struct Case {
    std::string name;
    json body;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"bad name!", json::object(), "invalid role name"},
      {"web", {{"token_num_uses", 3}}, "\"token_num_uses\" is not supported"},
      {"web", {{"token_type", "batch"}}, "service tokens only"},
      {"web", {{"token_bound_cidrs", {"10.0.0.0/8"}}}, "\"token_bound_cidrs\" is not supported"},
      {"web", {{"token_period", "1h"}}, "\"token_period\" is not supported"},
      {"web", {{"secret_id_num_uses", -1}}, "secret_id_num_uses cannot be negative"},
      {"web", {{"secret_id_num_uses", "many"}}, "\"secret_id_num_uses\" must be a whole number"},
      {"web", {{"secret_id_ttl", "banana"}}, "\"secret_id_ttl\""},
      {"web", {{"token_ttl", "2h"}, {"token_max_ttl", "1h"}}, "should not be greater than"},
      {"web", {{"secret_id_bound_cidrs", "10.0.0.0/33"}}, "invalid CIDR block \"10.0.0.0/33\""},
      {"web", {{"secret_id_bound_cidrs", {"10.0.0.0/8", "not-an-ip"}}}, "invalid CIDR block \"not-an-ip\""},
      {"web", {{"token_policies", {"a"}}, {"policies", {"b"}}}, "cannot specify both"},
      {"web", {{"bind_secret_id", "maybe"}}, "must be a boolean"},
      {"web", {{"bind_secret_id", false}}, "at least one constraint should be enabled on the role"},
      {"web", {{"role_id", "has space"}}, "role_id must not contain spaces"},
      {"web", {{"role_id", std::string(300, 'r')}}, "role_id is longer than"},
  };
  for (const auto& c : cases) {
    Status st = store_->write_role(c.name, c.body);
    EXPECT_EQ(st.code(), Code::invalid_argument) << c.body.dump();
    EXPECT_NE(st.message().find(c.message_part), std::string::npos) << c.body.dump() << " -> " << st.message();
    EXPECT_EQ(store_->get_role("web").status().code(), Code::not_found) << "nothing stored for " << c.body.dump();
  }
  EXPECT_EQ(store_->write_role("web", json::array()).code(), Code::invalid_argument);
}

TEST_F(AppRoleTest, BindSecretIdFalseNeedsBoundCidrs) {
  write("probe", {{"bind_secret_id", false}, {"secret_id_bound_cidrs", "127.0.0.1/32"}});
  const std::string id = role_id("probe");
  const AppRoleLoginResult ok = login(id, "");
  ASSERT_EQ(ok.outcome, AppRoleLoginOutcome::issued) << ok.reason;
  EXPECT_EQ(ok.token->info.meta.at("role_name"), "probe");
  const AppRoleLoginResult far = login(id, "", "10.0.0.1");
  EXPECT_EQ(far.outcome, AppRoleLoginOutcome::refused);
  EXPECT_NE(far.reason.find("secret_id_bound_cidrs"), std::string::npos) << far.reason;
  // Clearing the CIDRs of such a role would leave nothing to check: refused, role unchanged.
  Status st = store_->write_role("probe", {{"secret_id_bound_cidrs", ""}});
  EXPECT_EQ(st.code(), Code::invalid_argument);
  EXPECT_EQ(store_->get_role("probe")->secret_id_bound_cidrs, std::vector<std::string>{"127.0.0.1/32"});
  // Secret IDs do not exist for such a role.
  EXPECT_EQ(store_->generate_secret_id("probe", json::object()).status().message(),
            "bind_secret_id is not set on the role");
}

TEST_F(AppRoleTest, RoleIdCanBeSetButNotShared) {
  write("a", json::object());
  write("b", {{"role_id", "custom-b"}});
  EXPECT_EQ(role_id("b"), "custom-b");
  const std::string old_a = role_id("a");
  ASSERT_TRUE(store_->set_role_id("a", "custom-a").ok());
  EXPECT_EQ(role_id("a"), "custom-a");
  EXPECT_NE(store_->set_role_id("a", "custom-b").code(), Code::ok);  // b has it
  EXPECT_EQ(role_id("a"), "custom-a");
  EXPECT_EQ(store_->set_role_id("missing", "x").code(), Code::not_found);
  EXPECT_EQ(store_->set_role_id("a", "").code(), Code::invalid_argument);

  const GeneratedSecretId s = secret("a");
  EXPECT_EQ(login(old_a, text(s)).outcome, AppRoleLoginOutcome::refused);  // the old role_id is gone
  EXPECT_EQ(login("custom-a", text(s)).outcome, AppRoleLoginOutcome::issued);
}

// --- secret IDs ---

TEST_F(AppRoleTest, SecretIdBoundsFollowTheRole) {
  write("limited", {{"secret_id_num_uses", 3}, {"secret_id_ttl", 600}});
  struct Case {
    json body;
    std::string message;
  };
  const std::vector<Case> refused = {
      {{{"num_uses", 4}}, "num_uses cannot be higher than the role's secret_id_num_uses"},
      {{{"num_uses", 0}}, "num_uses cannot be higher than the role's secret_id_num_uses"},
      {{{"num_uses", -1}}, "num_uses cannot be negative"},
      {{{"ttl", 601}}, "ttl cannot be longer than the role's secret_id_ttl"},
      {{{"ttl", 0}}, "ttl cannot be longer than the role's secret_id_ttl"},
      {{{"ttl", "11m"}}, "ttl cannot be longer than the role's secret_id_ttl"},
      {{{"token_bound_cidrs", "10.0.0.0/8"}}, "\"token_bound_cidrs\" is not supported"},
      {{{"metadata", {{"k", 5}}}}, "\"metadata\" must be a map of strings"},
  };
  for (const auto& c : refused) {
    auto g = store_->generate_secret_id("limited", c.body);
    EXPECT_EQ(g.status().code(), Code::invalid_argument) << c.body.dump();
    EXPECT_EQ(g.status().message().substr(0, c.message.size()), c.message) << c.body.dump();
  }
  const GeneratedSecretId def = secret("limited");
  EXPECT_EQ(def.ttl, 600);
  EXPECT_EQ(def.num_uses, 3);
  const GeneratedSecretId narrower = secret("limited", {{"num_uses", 2}, {"ttl", "5m"}});
  EXPECT_EQ(narrower.ttl, 300);
  EXPECT_EQ(narrower.num_uses, 2);

  write("open", json::object());  // unlimited, no expiry: any bounds
  const GeneratedSecretId any = secret("open", {{"num_uses", 5}, {"ttl", "1h"}});
  EXPECT_EQ(any.num_uses, 5);
  EXPECT_EQ(any.ttl, 3600);
  EXPECT_EQ(secret("open").ttl, 0);

  auto missing = store_->generate_secret_id("nope", json::object());
  EXPECT_EQ(missing.status().code(), Code::invalid_argument);
  EXPECT_EQ(missing.status().message(), "role \"nope\" does not exist");
}

TEST_F(AppRoleTest, SecretIdsAreRandomAndNeverStoredInClear) {
  write("web", json::object());
  std::set<std::string> ids, accessors;
  std::vector<std::string> all;
  for (int i = 0; i < 100; ++i) {
    const GeneratedSecretId g = secret("web");
    const std::string s = text(g);
    ASSERT_EQ(s.size(), 36u);
    for (std::size_t k = 0; k < s.size(); ++k) {
      if (k == 8 || k == 13 || k == 18 || k == 23) {
        EXPECT_EQ(s[k], '-') << s;
      } else {
        EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(s[k]))) << s;
      }
    }
    EXPECT_NE(s, g.accessor);
    ids.insert(s);
    accessors.insert(g.accessor);
    all.push_back(s);
  }
  EXPECT_EQ(ids.size(), 100u);
  EXPECT_EQ(accessors.size(), 100u);
  const std::string bytes = all_database_bytes();
  ASSERT_FALSE(bytes.empty());
  for (const auto& s : all) EXPECT_EQ(bytes.find(s), std::string::npos) << "secret ID in the database file";
  EXPECT_NE(bytes.find(*accessors.begin()), std::string::npos);  // the accessor is a public handle
}

TEST_F(AppRoleTest, MetadataFormsReachTheToken) {
  write("web", json::object());
  const std::vector<json> forms = {json{{"metadata", {{"env", "prod"}, {"role_name", "spoof"}}}},
                                   json{{"metadata", R"({"env": "prod", "role_name": "spoof"})"}},
                                   json{{"metadata", "env=prod,role_name=spoof"}}};
  for (const auto& body : forms) {
    const GeneratedSecretId g = secret("web", body);
    auto looked = store_->lookup_secret_id("web", text(g));
    ASSERT_TRUE(looked.ok() && looked->has_value()) << body.dump();
    EXPECT_EQ((**looked)["metadata"]["env"], "prod") << body.dump();
    const AppRoleLoginResult r = login(role_id("web"), text(g));
    ASSERT_EQ(r.outcome, AppRoleLoginOutcome::issued) << r.reason;
    EXPECT_EQ(r.token->info.meta.at("env"), "prod");
    EXPECT_EQ(r.token->info.meta.at("role_name"), "web");  // the role's name always wins
  }
  EXPECT_EQ(store_->generate_secret_id("web", {{"metadata", "{not json"}}).status().code(), Code::invalid_argument);
  EXPECT_EQ(store_->generate_secret_id("web", {{"metadata", "novalue"}}).status().code(), Code::invalid_argument);
  EXPECT_TRUE(store_->generate_secret_id("web", {{"metadata", nullptr}}).ok());  // hvac sends null
}

// --- CIDR restrictions ---

TEST_F(AppRoleTest, CidrBlocks) {
  auto b = CidrBlock::parse("10.1.2.3/8");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->to_string(), "10.0.0.0/8");
  EXPECT_EQ(CidrBlock::parse("192.168.1.7")->to_string(), "192.168.1.7/32");
  EXPECT_EQ(CidrBlock::parse("fd00::1/8")->to_string(), "fd00::/8");
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "fd00::/129", "10.0.0/8", "x/8", "10.0.0.0/8/8",
                          "::ffff:10.0.0.0/104", "10.0.0.0/-1"}) {
    EXPECT_FALSE(CidrBlock::parse(bad).ok()) << bad;
  }
  const auto blocks = parse_cidrs({"10.0.0.0/8", "fd00::/8"});
  ASSERT_TRUE(blocks.ok());
  EXPECT_TRUE(address_in("10.200.0.1", *blocks));
  EXPECT_TRUE(address_in("::ffff:10.200.0.1", *blocks));  // a dual-stack socket's IPv4 peer
  EXPECT_TRUE(address_in("fd12::5", *blocks));
  EXPECT_FALSE(address_in("11.0.0.1", *blocks));
  EXPECT_FALSE(address_in("fe80::1", *blocks));
  EXPECT_FALSE(address_in("not an address", *blocks));
  EXPECT_TRUE(blocks_within(*parse_cidrs({"10.1.0.0/16", "10.2.3.4"}), *parse_cidrs({"10.0.0.0/8"})));
  EXPECT_FALSE(blocks_within(*parse_cidrs({"10.0.0.0/7"}), *parse_cidrs({"10.0.0.0/8"})));
  EXPECT_FALSE(blocks_within(*parse_cidrs({"fd00::/16"}), *parse_cidrs({"10.0.0.0/8"})));
  EXPECT_TRUE(blocks_within(*parse_cidrs({"1.2.3.4"}), {}));
}

TEST_F(AppRoleTest, CidrChecksAtGenerationAndLogin) {
  write("net", {{"secret_id_bound_cidrs", {"10.0.0.0/8"}}, {"secret_id_num_uses", 1}});
  auto outside = store_->generate_secret_id("net", {{"cidr_list", "192.168.0.0/16"}});
  EXPECT_EQ(outside.status().code(), Code::invalid_argument);
  EXPECT_NE(outside.status().message().find("failed to verify the CIDR restrictions"), std::string::npos);
  EXPECT_EQ(store_->generate_secret_id("net", {{"cidr_list", "10.0.0.0/7"}}).status().code(), Code::invalid_argument);
  EXPECT_EQ(store_->generate_secret_id("net", {{"cidr_list", "bogus"}}).status().code(), Code::invalid_argument);

  const std::string id = role_id("net");
  const GeneratedSecretId narrow = secret("net", {{"cidr_list", "10.1.0.0/16"}});
  // Refusals by address change nothing: the single use is still there afterwards.
  EXPECT_EQ(login(id, text(narrow), "192.168.1.1").outcome, AppRoleLoginOutcome::refused);  // outside the role
  const AppRoleLoginResult wrong = login(id, text(narrow), "10.2.0.1");                   // outside the secret ID
  EXPECT_EQ(wrong.outcome, AppRoleLoginOutcome::refused);
  EXPECT_NE(wrong.reason.find("cidr_list"), std::string::npos) << wrong.reason;
  EXPECT_EQ(wrong.reason.find(text(narrow)), std::string::npos) << "the reason must not hold the secret ID";
  EXPECT_EQ(login(id, text(narrow), "::ffff:10.1.2.3").outcome, AppRoleLoginOutcome::issued);

  // A replay from outside the role's network is refused without revoking anything.
  EXPECT_EQ(login(id, text(narrow), "192.168.1.1").outcome, AppRoleLoginOutcome::refused);
  EXPECT_EQ(login(id, text(narrow), "10.1.2.3").outcome, AppRoleLoginOutcome::replayed);
}

// --- login ---

TEST_F(AppRoleTest, LoginIssuesAVaultShapedBoundToken) {
  write("web", {{"token_policies", {"web"}}, {"token_ttl", "10m"}, {"token_max_ttl", "1h"},
                {"token_explicit_max_ttl", "30m"}});
  const GeneratedSecretId g = secret("web");
  const AppRoleLoginResult r = login(role_id("web"), text(g));
  ASSERT_EQ(r.outcome, AppRoleLoginOutcome::issued) << r.reason;
  EXPECT_EQ(r.role_name, "web");
  EXPECT_EQ(r.secret_id_accessor, g.accessor);
  const TokenInfo& info = r.token->info;
  EXPECT_EQ(info.policies, (std::vector<std::string>{"default", "web"}));
  EXPECT_EQ(info.display_name, "approle");
  EXPECT_EQ(info.path, "auth/approle/login");
  EXPECT_EQ(info.meta.at("role_name"), "web");
  EXPECT_TRUE(info.orphan);
  EXPECT_TRUE(info.renewable);
  EXPECT_EQ(info.ttl, 600);
  EXPECT_EQ(info.explicit_max_ttl, 1800);  // the smaller of token_max_ttl and token_explicit_max_ttl
  EXPECT_EQ(info.bound_cert_fingerprint, kFp);
  EXPECT_TRUE(tokens_->lookup(token(r), kFp).ok());
  EXPECT_EQ(tokens_->lookup(token(r), kOtherFp).status().code(), Code::permission_denied);

  write("nodefault", {{"token_policies", {"web"}}, {"token_no_default_policy", true}});
  const AppRoleLoginResult nd = login(role_id("nodefault"), text(secret("nodefault")));
  ASSERT_EQ(nd.outcome, AppRoleLoginOutcome::issued);
  EXPECT_EQ(nd.token->info.policies, std::vector<std::string>{"web"});
}

TEST_F(AppRoleTest, RefusalsAllLookTheSame) {
  write("web", {{"secret_id_ttl", 60}});
  write("other", json::object());
  const std::string id = role_id("web");
  const GeneratedSecretId mine = secret("web");
  const GeneratedSecretId theirs = secret("other");
  struct Case {
    std::string role_id;
    std::string secret_id;
    std::string reason_part;
  };
  const std::vector<Case> cases = {
      {"", text(mine), "no role_id"},
      {"no-such-role-id", text(mine), "no role has this role_id"},
      {std::string(300, 'r'), text(mine), "too long"},
      {id, "", "no secret_id presented"},
      {id, "00000000-0000-0000-0000-000000000000", "unknown secret ID"},
      {id, text(theirs), "unknown secret ID"},  // another role's secret ID
      {id, std::string(1000, 's'), "too long"},
  };
  for (const auto& c : cases) {
    const AppRoleLoginResult r = login(c.role_id, c.secret_id);
    EXPECT_EQ(r.outcome, AppRoleLoginOutcome::refused) << c.reason_part;
    EXPECT_FALSE(r.token.has_value());
    EXPECT_NE(r.reason.find(c.reason_part), std::string::npos) << r.reason;
    if (!c.secret_id.empty()) {
      EXPECT_EQ(r.reason.find(c.secret_id), std::string::npos) << r.reason;
    }
  }
  // Expired: refused, and the sweep removes it.
  now_ += 61;
  const AppRoleLoginResult expired = login(id, text(mine));
  EXPECT_EQ(expired.outcome, AppRoleLoginOutcome::refused);
  EXPECT_NE(expired.reason.find("expired"), std::string::npos) << expired.reason;
  auto swept = store_->sweep_expired();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 1u);
  EXPECT_NE(login(id, text(mine)).reason.find("unknown secret ID"), std::string::npos);
}

TEST_F(AppRoleTest, ReplayRevokesTheFirstUsesTokensAndTheirChildren) {
  write("once", {{"secret_id_num_uses", 1}, {"token_policies", {"web"}}});
  const std::string id = role_id("once");
  const GeneratedSecretId g = secret("once");
  const AppRoleLoginResult first = login(id, text(g));
  ASSERT_EQ(first.outcome, AppRoleLoginOutcome::issued) << first.reason;
  const std::string t = token(first);
  auto child = tokens_->create_child(first.token->info, TokenSpec{});
  ASSERT_TRUE(child.ok()) << child.status().to_string();
  const std::string c = std::string(child->token.view(crypto::reveal()));
  ASSERT_TRUE(alive(t));
  ASSERT_TRUE(alive(c));

  const AppRoleLoginResult replay = login(id, text(g));
  EXPECT_EQ(replay.outcome, AppRoleLoginOutcome::replayed);
  EXPECT_FALSE(replay.token.has_value());
  EXPECT_EQ(replay.revoked_tokens, 2u);
  EXPECT_EQ(replay.role_name, "once");
  EXPECT_EQ(replay.secret_id_accessor, g.accessor);
  EXPECT_EQ(replay.reason.find(text(g)), std::string::npos);
  EXPECT_FALSE(alive(t));
  EXPECT_FALSE(alive(c));
  // Still a replay the next time (nothing left to revoke); the used-up ID is not listed.
  const AppRoleLoginResult again = login(id, text(g));
  EXPECT_EQ(again.outcome, AppRoleLoginOutcome::replayed);
  EXPECT_EQ(again.revoked_tokens, 0u);
  auto listed = store_->list_secret_id_accessors("once");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(AppRoleTest, LimitedAndUnlimitedSecretIds) {
  write("twice", {{"secret_id_num_uses", 2}});
  const GeneratedSecretId g = secret("twice");
  const std::string id = role_id("twice");
  const AppRoleLoginResult a = login(id, text(g));
  const AppRoleLoginResult b = login(id, text(g));
  ASSERT_EQ(a.outcome, AppRoleLoginOutcome::issued);
  ASSERT_EQ(b.outcome, AppRoleLoginOutcome::issued);
  auto looked = store_->lookup_secret_id("twice", text(g));
  ASSERT_TRUE(looked.ok());
  EXPECT_FALSE(looked->has_value());  // used up
  const AppRoleLoginResult c = login(id, text(g));
  EXPECT_EQ(c.outcome, AppRoleLoginOutcome::replayed);
  EXPECT_EQ(c.revoked_tokens, 2u);
  EXPECT_FALSE(alive(token(a)));
  EXPECT_FALSE(alive(token(b)));

  write("many", json::object());
  const GeneratedSecretId u = secret("many");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(login(role_id("many"), text(u)).outcome, AppRoleLoginOutcome::issued);
}

TEST_F(AppRoleTest, TombstoneOutlivesTheSecretIdUntilTheTokensCannotLive) {
  write("short", {{"secret_id_num_uses", 1}, {"secret_id_ttl", 60}, {"token_max_ttl", "1h"}});
  const std::string id = role_id("short");
  const GeneratedSecretId g = secret("short");
  const AppRoleLoginResult first = login(id, text(g));
  ASSERT_EQ(first.outcome, AppRoleLoginOutcome::issued);
  now_ += 120;  // past the secret ID's own TTL, within the token's max TTL
  ASSERT_TRUE(store_->sweep_expired().ok());
  ASSERT_TRUE(tokens_->renew(token(first), kFp, 0).ok());
  const AppRoleLoginResult replay = login(id, text(g));
  EXPECT_EQ(replay.outcome, AppRoleLoginOutcome::replayed) << replay.reason;
  EXPECT_EQ(replay.revoked_tokens, 1u);
  now_ += 3600;  // every token it could have produced is dead: the tombstone goes
  auto swept = store_->sweep_expired();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 1u);
  EXPECT_EQ(login(id, text(g)).outcome, AppRoleLoginOutcome::refused);
}

TEST_F(AppRoleTest, ReplayCheckOnlyNeverIssuesButStillRevokes) {
  write("once", {{"secret_id_num_uses", 1}});
  const std::string id = role_id("once");
  const GeneratedSecretId fresh = secret("once");
  const AppRoleLoginResult locked = login(id, text(fresh), "127.0.0.1", /*replay_check_only=*/true);
  EXPECT_EQ(locked.outcome, AppRoleLoginOutcome::refused);
  EXPECT_FALSE(locked.token.has_value());
  // Not consumed by the locked attempt.
  const AppRoleLoginResult first = login(id, text(fresh));
  ASSERT_EQ(first.outcome, AppRoleLoginOutcome::issued);
  const AppRoleLoginResult replay = login(id, text(fresh), "127.0.0.1", /*replay_check_only=*/true);
  EXPECT_EQ(replay.outcome, AppRoleLoginOutcome::replayed);
  EXPECT_EQ(replay.revoked_tokens, 1u);
  EXPECT_FALSE(alive(token(first)));

  write("nosecret", {{"bind_secret_id", false}, {"secret_id_bound_cidrs", "127.0.0.0/8"}});
  EXPECT_EQ(login(role_id("nosecret"), "", "127.0.0.1", true).outcome, AppRoleLoginOutcome::refused);
}

// --- administration ---

TEST_F(AppRoleTest, LookupListAndDestroy) {
  write("web", {{"secret_id_num_uses", 5}, {"secret_id_ttl", "1h"}, {"secret_id_bound_cidrs", "127.0.0.0/8"}});
  const GeneratedSecretId a = secret("web", {{"cidr_list", {"127.0.0.1/32"}}, {"metadata", {{"host", "db1"}}}});
  const GeneratedSecretId b = secret("web");
  auto listed = store_->list_secret_id_accessors("web");
  ASSERT_TRUE(listed.ok());
  std::vector<std::string> expected{a.accessor, b.accessor};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*listed, expected);

  now_ += 10;
  ASSERT_EQ(login(role_id("web"), text(a)).outcome, AppRoleLoginOutcome::issued);
  auto by_id = store_->lookup_secret_id("web", text(a));
  ASSERT_TRUE(by_id.ok() && by_id->has_value());
  const json& d = **by_id;
  EXPECT_EQ(d["secret_id_accessor"], a.accessor);
  EXPECT_EQ(d["secret_id_num_uses"], 4);  // uses left
  EXPECT_EQ(d["secret_id_ttl"], 3600);
  EXPECT_EQ(d["cidr_list"], json::array({"127.0.0.1/32"}));
  EXPECT_EQ(d["metadata"], json({{"host", "db1"}}));
  EXPECT_EQ(d["creation_time"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(d["last_updated_time"], "2023-11-14T22:13:30Z");
  EXPECT_FALSE(d.dump().find(text(a)) != std::string::npos);
  auto by_acc = store_->lookup_secret_id_accessor("web", a.accessor);
  ASSERT_TRUE(by_acc.ok() && by_acc->has_value());
  EXPECT_EQ(**by_acc, d);

  // Another role cannot see or destroy them.
  write("other", json::object());
  EXPECT_FALSE(store_->lookup_secret_id("other", text(a))->has_value());
  EXPECT_FALSE(*store_->destroy_secret_id_accessor("other", a.accessor));
  EXPECT_EQ(store_->lookup_secret_id("nope", text(a)).status().code(), Code::invalid_argument);

  EXPECT_TRUE(*store_->destroy_secret_id_accessor("web", a.accessor));
  EXPECT_FALSE(*store_->destroy_secret_id_accessor("web", a.accessor));
  EXPECT_EQ(login(role_id("web"), text(a)).outcome, AppRoleLoginOutcome::refused);
  EXPECT_TRUE(*store_->destroy_secret_id("web", text(b)));
  EXPECT_FALSE(store_->lookup_secret_id("web", text(b))->has_value());
  EXPECT_TRUE(store_->list_secret_id_accessors("web")->empty());

  // A used-up secret ID is not destroyed: its tombstone keeps recognising the replay.
  write("once", {{"secret_id_num_uses", 1}});
  const GeneratedSecretId o = secret("once");
  ASSERT_EQ(login(role_id("once"), text(o)).outcome, AppRoleLoginOutcome::issued);
  EXPECT_FALSE(*store_->destroy_secret_id("once", text(o)));
  EXPECT_EQ(login(role_id("once"), text(o)).outcome, AppRoleLoginOutcome::replayed);

  // Deleting the role takes its secret IDs with it.
  const GeneratedSecretId c = secret("web");
  const std::string web_id = role_id("web");
  ASSERT_TRUE(store_->delete_role("web").ok());
  ASSERT_TRUE(store_->delete_role("web").ok());  // idempotent
  EXPECT_EQ(login(web_id, text(c)).outcome, AppRoleLoginOutcome::refused);
  EXPECT_EQ(store_->list_secret_id_accessors("web").status().code(), Code::invalid_argument);
}

// The audit log HMACs every value not on its allow-list: the secret ID in a login request and in
// a generation response, the secret-ID accessor, the role_id, and the issued token all are.
TEST(AppRoleAudit, SecretIdsAreNotAllowListed) {
  for (const char* pointer : {"/request/data/secret_id", "/request/data/role_id", "/response/data/secret_id",
                              "/response/data/secret_id_accessor", "/response/data/role_id",
                              "/response/auth/client_token", "/response/auth/accessor"}) {
    EXPECT_FALSE(audit::allow_listed(pointer)) << pointer;
  }
  crypto::SecretBytes key = crypto::SecretBytes::copy_of(std::string(32, 'k'));
  const std::string sid = "3f1c2a4b-0000-4d2e-9abc-0123456789ab";
  crypto::SecretJson entry;
  entry["request"]["path"] = "auth/approle/login";
  entry["request"]["data"]["secret_id"] = crypto::SecretJson::string_t(sid.begin(), sid.end());
  entry["response"]["data"]["secret_id"] = crypto::SecretJson::string_t(sid.begin(), sid.end());
  auto redacted = audit::redact(key, entry);
  ASSERT_TRUE(redacted.ok()) << redacted.status().to_string();
  EXPECT_EQ(redacted->dump().find(sid), std::string::npos);
  auto mac = audit::hmac_value(key, sid);
  ASSERT_TRUE(mac.ok());
  EXPECT_EQ((*redacted)["request"]["data"]["secret_id"], *mac);
  EXPECT_EQ((*redacted)["response"]["data"]["secret_id"], *mac);
  EXPECT_EQ((*redacted)["request"]["path"], "auth/approle/login");
}

// --- concurrency ---

TEST_F(AppRoleTest, ConcurrentLoginsWithOneSingleUseSecretIdGiveExactlyOneToken) {
  write("once", {{"secret_id_num_uses", 1}});
  const std::string id = role_id("once");
  constexpr int kThreads = 24;
  for (int round = 0; round < 5; ++round) {
    const GeneratedSecretId g = secret("once");
    const std::string sid = text(g);
    std::barrier start(kThreads);
    std::vector<AppRoleLoginResult> results(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        auto r = store_->login(AppRoleLoginRequest{id, sid, "127.0.0.1", kFp, false});
        if (r.ok()) results[static_cast<std::size_t>(i)] = std::move(r).value();
      });
    }
    for (auto& t : threads) t.join();
    int issued = 0, replayed = 0;
    std::uint64_t revoked = 0;
    std::string issued_token;
    for (const auto& r : results) {
      if (r.outcome == AppRoleLoginOutcome::issued) {
        ++issued;
        issued_token = token(r);
      }
      if (r.outcome == AppRoleLoginOutcome::replayed) ++replayed;
      revoked += r.revoked_tokens;
    }
    EXPECT_EQ(issued, 1) << "round " << round;
    EXPECT_EQ(replayed, kThreads - 1) << "round " << round;
    // The first replay revoked the one token; the others found nothing left.
    EXPECT_EQ(revoked, 1u) << "round " << round;
    EXPECT_FALSE(alive(issued_token));
  }
}

}  // namespace
}  // namespace coffer::auth
