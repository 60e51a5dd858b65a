// Unit tests for auth/policy: HCL and JSON parsing (comments, Vault's extra keys, errors with
// line numbers) and Acl evaluation (exact, '*', '+', Vault's priority order, union, deny, root,
// default, deny by default, wrapping and parameter constraints).
#include <gtest/gtest.h>

#include <string>

#include "common/duration.h"
#include "auth/policy.h"

namespace coffer::auth {
namespace {

Policy parse_ok(std::string_view text, std::string_view name = "p") {
  auto p = parse_policy(name, text);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return p.ok() ? std::move(p).value() : Policy{};
}

std::shared_ptr<const Acl> acl_of(std::initializer_list<std::string_view> texts) {
  std::vector<std::shared_ptr<const Policy>> policies;
  int i = 0;
  for (auto t : texts) policies.push_back(std::make_shared<const Policy>(parse_ok(t, "p" + std::to_string(i++))));
  return Acl::build(policies);
}

std::vector<std::string> names(std::initializer_list<const char*> l) { return {l.begin(), l.end()}; }

// --- durations (shared by policies, roles and tokens) ---------------------------------------

TEST(Duration, VaultForms) {
  struct Row {
    const char* text;
    std::int64_t seconds;
  };
  for (const Row& r : {Row{"1h", 3600}, Row{"15m", 900}, Row{"30s", 30}, Row{"1h30m", 5400},
                       Row{"90", 90}, Row{" 90 ", 90}, Row{"1.5h", 5400}, Row{"2d", 172800},
                       Row{"500ms", 0}, Row{"", 0}, Row{"0", 0}, Row{"1m30s", 90}}) {
    auto d = parse_duration(r.text);
    ASSERT_TRUE(d.ok()) << r.text << ": " << d.status().to_string();
    EXPECT_EQ(*d, r.seconds) << r.text;
  }
  for (const char* bad : {"1x", "-1s", "1h30", "abc", "h", ".h", "99999999999h"}) {
    auto d = parse_duration(bad);
    EXPECT_EQ(d.status().code(), Code::invalid_argument) << bad;
  }
  EXPECT_EQ(*parse_duration_value(nlohmann::json(60)), 60);
  EXPECT_EQ(*parse_duration_value(nlohmann::json(60.9)), 60);
  EXPECT_EQ(*parse_duration_value(nlohmann::json("2m")), 120);
  EXPECT_EQ(*parse_duration_value(nlohmann::json(nullptr)), 0);
  EXPECT_FALSE(parse_duration_value(nlohmann::json(true)).ok());
  EXPECT_FALSE(parse_duration_value(nlohmann::json(-3)).ok());
  EXPECT_FALSE(parse_duration_value(nlohmann::json::array()).ok());
}

// --- parsing ---------------------------------------------------------------------------------

TEST(PolicyParse, HclBlocksAndAllCommentStyles) {
  const Policy p = parse_ok(R"(
# hash comment
// slash comment
/* block
   comment */
path "secret/app/*" {
  capabilities = ["read", "list"]   # trailing comment
}
path "secret/app/admin" { capabilities = ["deny"] }
path "/sys/rotate" {
  capabilities = [
    "update",
    "sudo",
  ]
}
)");
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(p.rules[0].pattern, "secret/app/*");
  EXPECT_EQ(p.rules[0].capabilities, Capabilities::of({Capability::read, Capability::list}));
  EXPECT_EQ(p.rules[0].line, 6);
  EXPECT_TRUE(p.rules[1].capabilities.denied());
  EXPECT_EQ(p.rules[2].pattern, "sys/rotate");  // leading '/' stripped, as Vault does
  EXPECT_EQ(p.rules[2].capabilities, Capabilities::of({Capability::update, Capability::sudo}));
}

TEST(PolicyParse, AllCapabilitiesAccepted) {
  const Policy p = parse_ok(
      R"(path "a" { capabilities = ["create","read","update","patch","delete","list","sudo"] })");
  ASSERT_EQ(p.rules.size(), 1u);
  for (Capability c : {Capability::create, Capability::read, Capability::update, Capability::patch,
                       Capability::delete_, Capability::list, Capability::sudo}) {
    EXPECT_TRUE(p.rules[0].capabilities.has(c)) << capability_name(c);
  }
  EXPECT_FALSE(p.rules[0].capabilities.denied());
}

TEST(PolicyParse, VaultExtraKeysAreConsumed) {
  const Policy p = parse_ok(R"(
path "auth/approle/role/r/secret-id" {
  capabilities = ["create","update"]
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = "90s"
}
path "secret/restricted" {
  capabilities = ["create"]
  allowed_parameters  = { "foo" = [], "Bar" = ["zip","zap"] }
  denied_parameters = {
    "secret" = []
  }
  required_parameters = ["foo"]
  comment = "documentation only"
}
)");
  ASSERT_EQ(p.rules.size(), 2u);
  EXPECT_EQ(p.rules[0].min_wrapping_ttl, 1);
  EXPECT_EQ(p.rules[0].max_wrapping_ttl, 90);
  EXPECT_EQ(p.rules[1].allowed_parameters.dump(), R"({"bar":["zip","zap"],"foo":[]})");
  EXPECT_EQ(p.rules[1].denied_parameters.dump(), R"({"secret":[]})");
  EXPECT_EQ(p.rules[1].required_parameters, names({"foo"}));
}

TEST(PolicyParse, LegacyPolicyKeyMapsLikeVault) {
  const Policy p = parse_ok(R"(path "a/*" { policy = "write" })");
  EXPECT_EQ(p.rules[0].capabilities,
            Capabilities::of({Capability::create, Capability::read, Capability::update,
                              Capability::delete_, Capability::list}));
}

TEST(PolicyParse, DenyDropsEverythingElseInTheBlock) {
  const Policy p = parse_ok(R"(path "a" { capabilities = ["read", "deny"]  required_parameters = ["x"] })");
  EXPECT_EQ(p.rules[0].capabilities, Capabilities::of({Capability::deny}));
  EXPECT_TRUE(p.rules[0].required_parameters.empty());
}

TEST(PolicyParse, UnknownCapabilityIsRefusedWithItsLine) {
  auto p = parse_policy("p", "path \"a\" {\n  capabilities = [\n    \"read\",\n    \"raed\"\n  ]\n}\n");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::invalid_argument);
  EXPECT_NE(p.status().message().find("line 4"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("invalid capability \"raed\""), std::string::npos);
  EXPECT_NE(p.status().message().find("path \"a\""), std::string::npos);
}

TEST(PolicyParse, SyntaxErrorsCarryLineNumbers) {
  struct Case {
    const char* text;
    const char* line;
    const char* words;
  };
  for (const Case& c : {
           Case{"path \"a\" {\n capabilities = [\"read\"\n}\n", "line 3", "expected ',' or ']'"},
           Case{"\n\npath \"a\" {\n capabilities = \"read]\n}\n", "line 4", "unterminated string"},
           Case{"path \"a\" {\n  capabilities = [read]\n}", "line 2", "strings must be quoted"},
           Case{"/* never\nclosed", "line 1", "unterminated /* comment"},
           Case{"path \"a\" {\n\n  bogus = 1\n}", "line 3", "invalid key \"bogus\""},
           Case{"\nname = \"x\"\nrole \"a\" {}\n", "line 3", "invalid key \"role\""},
           Case{"path \"a\" {\n  capabilities = [\"read\"]\n", "", "expected a key, found end of input"},
           Case{"path \"a\" {\n  mfa_methods = [\"m\"]\n}", "line 2", "not supported"},
           Case{"path \"a\" {\n capabilities=[\"read\"]\n capabilities=[\"list\"]\n}", "line 3", "duplicate key"},
           Case{"path \"a\" {\n min_wrapping_ttl = \"5x\"\n}", "line 2", "unknown unit"},
           Case{"path \"a\" {\n min_wrapping_ttl = \"90s\"\n max_wrapping_ttl = \"1s\"\n}", "line 1",
                "max_wrapping_ttl cannot be less than min_wrapping_ttl"},
       }) {
    auto p = parse_policy("p", c.text);
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_EQ(p.status().code(), Code::invalid_argument);
    EXPECT_NE(p.status().message().find(c.line), std::string::npos) << p.status().message();
    EXPECT_NE(p.status().message().find(c.words), std::string::npos) << p.status().message();
  }
}

TEST(PolicyParse, PatternRules) {
  EXPECT_FALSE(parse_policy("p", R"(path "secret/*/x" { capabilities = ["read"] })").ok());
  EXPECT_FALSE(parse_policy("p", R"(path "secret/+*" { capabilities = ["read"] })").ok());
  EXPECT_FALSE(parse_policy("p", R"(path "" { capabilities = ["read"] })").ok());
  EXPECT_TRUE(parse_policy("p", R"(path "*" { capabilities = ["read"] })").ok());
  EXPECT_TRUE(parse_policy("p", R"(path "secret/+/x/*" { capabilities = ["read"] })").ok());
}

TEST(PolicyParse, JsonFormMatchesHcl) {
  const Policy j = parse_ok(R"({"path": {
      "secret/app/*": {"capabilities": ["read", "list"]},
      "secret/app/admin": {"capabilities": ["deny"]},
      "auth/x": {"capabilities": ["update"], "min_wrapping_ttl": 5, "allowed_parameters": {"a": []}}}})");
  ASSERT_EQ(j.rules.size(), 3u);
  auto acl = Acl::build({std::make_shared<const Policy>(j)});
  EXPECT_TRUE(acl->allows("secret/app/x", Capability::read));
  EXPECT_FALSE(acl->allows("secret/app/admin", Capability::read));
  // The JSON array-of-objects form that HCL's JSON dialect also allows.
  const Policy a = parse_ok(R"({"path": [{"x/*": {"capabilities": ["read"]}}, {"y": {"capabilities": ["list"]}}]})");
  EXPECT_EQ(a.rules.size(), 2u);
}

TEST(PolicyParse, JsonErrorsNameThePath) {
  auto bad_cap = parse_policy("p", R"({"path": {"secret/*": {"capabilities": ["read", "wrtie"]}}})");
  ASSERT_FALSE(bad_cap.ok());
  EXPECT_NE(bad_cap.status().message().find("path \"secret/*\": invalid capability \"wrtie\""),
            std::string::npos)
      << bad_cap.status().message();
  EXPECT_FALSE(parse_policy("p", R"({"path": {"a": {"capabilities": ["read"]})").ok());  // truncated
  EXPECT_FALSE(parse_policy("p", R"({"paths": {}})").ok());
  EXPECT_FALSE(parse_policy("p", R"({"path": {"a": {"capabilities": "read"}}})").ok());
}

TEST(PolicyParse, TextMustBeUtf8) {
  EXPECT_TRUE(parse_policy("p", "# caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\x91\npath \"a\" { capabilities = [\"read\"] }").ok());
  for (const char* bad : {"\n\n# \xFF\n", "\n\n# \xC3\n", "\n\n# \xC0\xAF\n", "\n\n# \xED\xA0\x80\n",
                          "\n\n# \xE2\x82"}) {
    auto p = parse_policy("p", bad);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.status().message().find("line 3: the policy is not valid UTF-8"), std::string::npos)
        << p.status().message();
  }
}

TEST(PolicyParse, NestingIsBounded) {
  std::string deep = "path \"a\" { allowed_parameters = ";
  for (int i = 0; i < 100; ++i) deep += "[";
  auto p = parse_policy("p", deep);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("too deep"), std::string::npos);
}

TEST(PolicyParse, DefaultPolicyTextParses) {
  const Policy d = parse_ok(default_policy_text(), "default");
  EXPECT_EQ(d.rules.size(), 8u);  // token self-service (3), capabilities-self, mounts, wrapping (3)
}

// --- evaluation ------------------------------------------------------------------------------

TEST(AclEval, DenyByDefaultAndExactAndPrefix) {
  auto acl = acl_of({R"(
path "secret/app/*" { capabilities = ["read", "list"] }
path "secret/exact" { capabilities = ["update"] }
)"});
  struct Row {
    const char* path;
    Capability op;
    bool allowed;
  };
  for (const Row& r : {
           Row{"secret/app/db", Capability::read, true},
           Row{"secret/app/deep/er", Capability::read, true},
           Row{"secret/app/", Capability::list, true},
           Row{"secret/app", Capability::read, false},  // '*' globs after "secret/app/" only
           Row{"secret/app/db", Capability::update, false},
           Row{"secret/exact", Capability::update, true},
           Row{"secret/exact/more", Capability::update, false},
           Row{"secret/exac", Capability::update, false},
           Row{"secret/other", Capability::read, false},
           Row{"", Capability::read, false},
           Row{"/secret/app/db", Capability::read, true},  // leading '/' ignored
           Row{"secret/app/db", Capability::deny, false},
       }) {
    EXPECT_EQ(acl->allows(r.path, r.op), r.allowed) << r.path << " " << capability_name(r.op);
  }
  EXPECT_FALSE(acl->is_root());
}

TEST(AclEval, PlusMatchesExactlyOneSegment) {
  auto acl = acl_of({R"(path "secret/+/teamb" { capabilities = ["read"] }
                        path "kv/+/x/*" { capabilities = ["list"] })"});
  EXPECT_TRUE(acl->allows("secret/a/teamb", Capability::read));
  EXPECT_TRUE(acl->allows("secret/anything-here/teamb", Capability::read));
  EXPECT_FALSE(acl->allows("secret/teamb", Capability::read));
  EXPECT_FALSE(acl->allows("secret/a/b/teamb", Capability::read));
  EXPECT_FALSE(acl->allows("secret/a/teamb/c", Capability::read));
  EXPECT_TRUE(acl->allows("kv/a/x/", Capability::list));
  EXPECT_TRUE(acl->allows("kv/a/x/y/z", Capability::list));
  EXPECT_FALSE(acl->allows("kv/a/y/z", Capability::list));
}

// The priority cases from vault/acl.go's comments and vault-api.md §1.13; each pair grants
// different capabilities so the winner is visible.
TEST(AclEval, PriorityBetweenPatterns) {
  struct Case {
    const char* high;
    const char* low;
    const char* path;
  };
  for (const Case& c : {
           Case{"foo/a*", "foo/+", "foo/ab"},                      // 1: later first wildcard wins
           Case{"foo/bar/+/baz", "foo/+/bar/baz", "foo/bar/bar/baz"},
           Case{"foo/+/bar", "foo/+/ba*", "foo/x/bar"},            // 2: not ending in '*' wins
           Case{"foo/+", "foo/*", "foo/x"},
           Case{"foo/+/bar/baz", "foo/+/+/baz", "foo/a/bar/baz"},  // 3: fewer '+' wins
           Case{"foo/+/bar/ba*", "foo/+/bar/b*", "foo/x/bar/baz"}, // 4: longer wins
           Case{"secret/app/*", "secret/*", "secret/app/x"},      // longest prefix
           Case{"secret/app/x", "secret/app/*", "secret/app/x"},  // exact beats any wildcard
           Case{"foo/+/b*", "foo/+/a*", "foo/x/ab"},  // the higher one does not match: the other applies
       }) {
    const std::string text = std::string("path \"") + c.high + "\" { capabilities = [\"read\"] }\n" +
                             "path \"" + c.low + "\" { capabilities = [\"list\"] }\n";
    auto acl = acl_of({text});
    const Capabilities caps = acl->capabilities(c.path);
    if (std::string_view(c.high) == "foo/+/b*") {
      EXPECT_EQ(caps, Capabilities::of({Capability::list})) << c.path;
      continue;
    }
    EXPECT_EQ(caps, Capabilities::of({Capability::read})) << c.high << " vs " << c.low;
    // Order of declaration does not matter.
    const std::string reversed = std::string("path \"") + c.low + "\" { capabilities = [\"list\"] }\n" +
                                 "path \"" + c.high + "\" { capabilities = [\"read\"] }\n";
    EXPECT_EQ(acl_of({reversed})->capabilities(c.path), Capabilities::of({Capability::read}));
  }
}

TEST(AclEval, LexicographicTieBreakPrefersLarger) {
  // Both match a/b/c/d with the same first wildcard (2), neither ends in '*', both have two '+'
  // and the same length: Vault's sort then ranks the lexicographically larger one highest.
  for (const char* text : {R"(path "a/+/c/+" { capabilities = ["read"] }
                              path "a/+/+/d" { capabilities = ["list"] })",
                           R"(path "a/+/+/d" { capabilities = ["list"] }
                              path "a/+/c/+" { capabilities = ["read"] })"}) {
    EXPECT_EQ(acl_of({text})->capabilities("a/b/c/d"), Capabilities::of({Capability::read}));
  }
}

TEST(AclEval, OnlyTheHighestPriorityPatternCounts) {
  auto acl = acl_of({R"(path "secret/*" { capabilities = ["read"] }
                        path "secret/app/*" { capabilities = ["list"] })"});
  EXPECT_TRUE(acl->allows("secret/other", Capability::read));
  EXPECT_FALSE(acl->allows("secret/app/x", Capability::read));  // no union across patterns
  EXPECT_TRUE(acl->allows("secret/app/x", Capability::list));
  // A deny on a lower-priority pattern does not apply either (Vault semantics).
  auto deny_low = acl_of({R"(path "secret/*" { capabilities = ["deny"] }
                             path "secret/app/*" { capabilities = ["read"] })"});
  EXPECT_TRUE(deny_low->allows("secret/app/x", Capability::read));
  EXPECT_FALSE(deny_low->allows("secret/x", Capability::read));
}

TEST(AclEval, SamePatternUnionsAcrossPoliciesAndDenyWins) {
  auto acl = acl_of({R"(path "secret/x" { capabilities = ["read"] })",
                     R"(path "secret/x" { capabilities = ["update"] })"});
  EXPECT_EQ(acl->capabilities("secret/x"), Capabilities::of({Capability::read, Capability::update}));

  auto denied = acl_of({R"(path "secret/*" { capabilities = ["read", "sudo"] })",
                        R"(path "secret/*" { capabilities = ["deny"] })",
                        R"(path "secret/*" { capabilities = ["list"] })"});
  EXPECT_FALSE(denied->allows("secret/a", Capability::read));
  EXPECT_FALSE(denied->allows("secret/a", Capability::sudo));
  EXPECT_FALSE(denied->allows("secret/a", Capability::list));
  EXPECT_EQ(denied->capability_names("secret/a"), names({"deny"}));
  // Same pattern twice within one policy unions as well.
  auto twice = acl_of({R"(path "k" { capabilities = ["read"] }
                          path "k" { capabilities = ["delete"] })"});
  EXPECT_TRUE(twice->allows("k", Capability::delete_));
  EXPECT_TRUE(twice->allows("k", Capability::read));
}

TEST(AclEval, RootAllowsEverything) {
  auto acl = Acl::build({root_policy()});
  EXPECT_TRUE(acl->is_root());
  EXPECT_TRUE(acl->allows("sys/seal", Capability::sudo));
  EXPECT_TRUE(acl->allows("anything/at/all", Capability::delete_));
  EXPECT_FALSE(acl->allows("x", Capability::deny));
  EXPECT_EQ(acl->capability_names("x"), names({"root"}));
}

TEST(AclEval, DefaultPolicyGrantsSelfServiceOnly) {
  auto acl = Acl::build({std::make_shared<const Policy>(parse_ok(default_policy_text(), "default"))});
  EXPECT_TRUE(acl->allows("auth/token/lookup-self", Capability::read));
  EXPECT_TRUE(acl->allows("auth/token/renew-self", Capability::update));
  EXPECT_TRUE(acl->allows("auth/token/revoke-self", Capability::update));
  EXPECT_TRUE(acl->allows("sys/capabilities-self", Capability::update));
  EXPECT_TRUE(acl->allows("sys/internal/ui/mounts", Capability::read));
  EXPECT_FALSE(acl->allows("auth/token/create", Capability::update));
  EXPECT_FALSE(acl->allows("secret/x", Capability::read));
  EXPECT_FALSE(acl->allows("auth/token/lookup-self", Capability::update));
}

TEST(AclEval, AnyCapability) {
  auto acl = acl_of({R"(path "secret/app/*" { capabilities = ["list"] }
                        path "secret/app/no" { capabilities = ["deny"] })"});
  EXPECT_TRUE(acl->any_capability("secret/app/x"));
  EXPECT_FALSE(acl->any_capability("secret/app/no"));
  EXPECT_FALSE(acl->any_capability("secret/other"));
  EXPECT_TRUE(Acl::build({root_policy()})->any_capability("secret/other"));
}

TEST(AclEval, EmptySetDeniesEverything) {
  auto acl = Acl::build({});
  EXPECT_FALSE(acl->allows("secret/x", Capability::read));
  EXPECT_EQ(acl->capability_names("secret/x"), names({"deny"}));
}

TEST(AclEval, ListFallsBackToPathWithoutTrailingSlash) {
  auto acl = acl_of({R"(path "secret/app" { capabilities = ["list"] })"});
  EXPECT_TRUE(acl->allows("secret/app/", Capability::list));
  EXPECT_FALSE(acl->allows("secret/app/", Capability::read));
  EXPECT_EQ(acl->capabilities("secret/app/"), Capabilities::of({Capability::list}));
}

TEST(AclEval, CapabilityNamesInVaultOrder) {
  auto acl = acl_of({R"(path "a" { capabilities = ["patch","create","delete","update","list","read","sudo"] })"});
  EXPECT_EQ(acl->capability_names("a"),
            names({"sudo", "read", "list", "update", "delete", "create", "patch"}));
}

TEST(AclEval, WrappingTtlBounds) {
  auto acl = acl_of({R"(path "auth/approle/role/r/secret-id" {
      capabilities = ["update"]
      min_wrapping_ttl = "1s"
      max_wrapping_ttl = "90s" })"});
  const char* p = "auth/approle/role/r/secret-id";
  EXPECT_FALSE(acl->allows(p, Capability::update));  // not wrapped: refused
  EXPECT_TRUE(acl->allows(p, Capability::update, AccessRequest{60, nullptr}));
  EXPECT_FALSE(acl->allows(p, Capability::update, AccessRequest{300, nullptr}));
  EXPECT_FALSE(acl->allows(p, Capability::update, AccessRequest{0, nullptr}));
  EXPECT_EQ(acl->wrapping_bounds(p, false).min, 1);
  EXPECT_EQ(acl->wrapping_bounds(p, false).max, 90);
}

TEST(AclEval, WrappingBoundsFollowTheGoverningRule) {
  auto acl = acl_of({R"(path "secret/app/*" {
      capabilities = ["read", "list"]
      min_wrapping_ttl = "30s" }
    path "secret/app/open" { capabilities = ["read"] }
    path "secret/app/closed" {
      capabilities = ["deny"]
      min_wrapping_ttl = "5s" })"});
  EXPECT_EQ(acl->wrapping_bounds("secret/app/db", false).min, 30);
  EXPECT_EQ(acl->wrapping_bounds("secret/app/", true).min, 30);
  EXPECT_EQ(acl->wrapping_bounds("secret/app/open", false).min, 0) << "the exact rule governs, without bounds";
  EXPECT_EQ(acl->wrapping_bounds("secret/app/closed", false).min, 0) << "denied: nothing to explain";
  EXPECT_EQ(acl->wrapping_bounds("secret/other", false).min, 0);
  EXPECT_FALSE(acl->allows("secret/app/db", Capability::read, AccessRequest{10, nullptr}));
  EXPECT_TRUE(acl->allows("secret/app/db", Capability::read, AccessRequest{30, nullptr}));
  EXPECT_TRUE(acl->allows("secret/app/open", Capability::read));
  EXPECT_EQ(Acl::build({root_policy()})->wrapping_bounds("secret/app/db", false).min, 0);
}

TEST(AclEval, ParameterConstraints) {
  auto acl = acl_of({R"(path "secret/restricted" {
      capabilities = ["create", "update", "delete"]
      allowed_parameters = { "foo" = [], "bar" = ["zip", "zap*"] }
      denied_parameters = { "bar" = ["zapped"] }
    }
    path "secret/required" {
      capabilities = ["update"]
      required_parameters = ["must"]
    }
    path "secret/nothing" {
      capabilities = ["update"]
      denied_parameters = { "*" = [] }
    })"});
  auto allows = [&](const char* path, const char* body) {
    const nlohmann::json data = nlohmann::json::parse(body);
    return acl->allows(path, Capability::update, AccessRequest{std::nullopt, &data});
  };
  EXPECT_TRUE(allows("secret/restricted", R"({})"));
  EXPECT_TRUE(allows("secret/restricted", R"({"foo": 1})"));
  EXPECT_TRUE(allows("secret/restricted", R"({"FOO": "x", "bar": "zip"})"));
  EXPECT_TRUE(allows("secret/restricted", R"({"bar": "zap-1"})"));
  EXPECT_TRUE(allows("secret/restricted", R"({"bar": ["zip", "zapx"]})"));
  EXPECT_TRUE(allows("secret/restricted", R"({"bar": "zip,zap2"})"));  // comma list, as Vault
  EXPECT_FALSE(allows("secret/restricted", R"({"bar": "nope"})"));
  EXPECT_FALSE(allows("secret/restricted", R"({"bar": ["zip", "nope"]})"));
  EXPECT_FALSE(allows("secret/restricted", R"({"bar": "zapped"})"));
  EXPECT_FALSE(allows("secret/restricted", R"({"other": 1})"));
  // DELETE carries no parameters: not checked.
  EXPECT_TRUE(acl->allows("secret/restricted", Capability::delete_));
  EXPECT_FALSE(allows("secret/required", R"({"x": 1})"));
  EXPECT_TRUE(allows("secret/required", R"({"Must": 1})"));
  EXPECT_FALSE(acl->allows("secret/required", Capability::update));  // no data: required missing
  EXPECT_FALSE(allows("secret/nothing", R"({"a": 1})"));
  EXPECT_TRUE(allows("secret/nothing", R"({})"));
}

TEST(AclEval, ManyRulesStayCorrect) {
  // A policy with many prefixes: the longest matching one must win regardless of order.
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text += "path \"data/" + std::to_string(i) + "/*\" { capabilities = [\"read\"] }\n";
  }
  text += "path \"data/1/special/*\" { capabilities = [\"update\"] }\n";
  auto acl = acl_of({text});
  EXPECT_TRUE(acl->allows("data/150/x", Capability::read));
  EXPECT_TRUE(acl->allows("data/1/special/x", Capability::update));
  EXPECT_FALSE(acl->allows("data/1/special/x", Capability::read));
  EXPECT_FALSE(acl->allows("data/200/x", Capability::read));
}

}  // namespace
}  // namespace coffer::auth
