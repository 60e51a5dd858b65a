// The VaultRouter's response wrapping and request nonces, in process: a real sqlite file, a
// FakeProtector keyring, the real token and policy stores and engines, and typed HttpRequests
// (no TLS; tests/integration/test_wrapping.py drives the same through cofferd). Covers
// X-Vault-Wrap-TTL on reads, logins and writes, sys/wrapping/{wrap,unwrap,lookup,rewrap} with
// Vault's rules (not both, third-party unwrap, unauthenticated lookup), the confinement of
// wrapping tokens, min/max_wrapping_ttl in policies, and X-Coffer-Nonce.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/vault_router.h"
#include "tests/support/sealed_store.h"
#include "tests/unit/storage/storage_test_util.h"

namespace coffer::api {
namespace {

using coffer::testing::TempDir;
using json = nlohmann::json;
using ::testing::HasSubstr;

constexpr std::int64_t kStart = 1'700'000'000;
const std::string kCert = std::string(64, 'c');
const std::string kOtherCert = std::string(64, 'd');

struct Reply {
  int status = 0;
  json body;
  std::string raw;
};

class WrappingRouterTest : public coffer::testing::SealedStoreTest {
 protected:
  void SetUp() override {
    SealedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    const auth::Clock clock = [this] { return now_.load(); };
    tokens_ = std::make_unique<auth::TokenStore>(*db_, keyring_->token_hash_key(), auth::TokenSettings{900, 86400}, clock);
    policies_ = std::make_unique<auth::PolicyStore>(*db_);
    auto roles = auth::CertRoleStore::load(*db_);
    ASSERT_OK(roles);
    cert_roles_ = std::move(roles).value();
    kv_ = std::make_unique<engines::KvEngine>(*barrier_);
    wrapping_ = std::make_unique<engines::WrappingEngine>(*db_, *barrier_, *tokens_, clock);
    nonces_ = std::make_unique<auth::NonceGuard>(*db_, 300, clock);
    Services services{*tokens_, *policies_, *cert_roles_, *kv_, ServerInfo{}};
    services.wrapping = wrapping_.get();
    services.max_wrapping_ttl = 86400;
    services.nonces = nonces_.get();
    router_ = std::make_unique<VaultRouter>(std::move(services));

    auth::TokenSpec root;
    root.policies = {"root"};
    root.no_expiry = true;
    root_ = issue(root);
    ASSERT_OK(kv_->write("app/db", crypto::SecretJson::parse(R"({"password":"pw-1"})")));
  }

  std::string issue(const auth::TokenSpec& spec) {
    auto t = tokens_->create(spec);
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    return t.ok() ? std::string(t->token.view(crypto::reveal())) : std::string();
  }
  std::string token_with(std::vector<std::string> policies) {
    auth::TokenSpec spec;
    spec.policies = std::move(policies);
    return issue(spec);
  }

  Reply call(const std::string& method, const std::string& path, const std::string& token = "",
             const std::string& body = "", std::vector<std::pair<std::string, std::string>> headers = {},
             const std::string& cert = kCert) {
    HttpRequest req;
    req.method = method;
    req.path = "/v1/" + path;
    req.remote_address = "127.0.0.1";
    req.remote_port = 40000;
    req.peer.fingerprint_sha256_hex = cert;
    if (!token.empty()) headers.emplace_back("x-vault-token", token);
    for (const auto& [k, v] : headers) req.headers.emplace_back(k, crypto::SecretString(v.begin(), v.end()));
    req.body = crypto::SecretBytes::copy_of(body);
    HttpResponse resp = router_->handle(req);
    Reply r;
    r.status = resp.status;
    r.raw = std::string(resp.body.view(crypto::reveal()));
    if (!r.raw.empty()) r.body = json::parse(r.raw, nullptr, false);
    return r;
  }
  std::vector<std::pair<std::string, std::string>> wrap(const std::string& ttl) { return {{"x-vault-wrap-ttl", ttl}}; }
  static std::string error(const Reply& r) {
    return r.body.is_object() && r.body.contains("errors") && !r.body["errors"].empty()
               ? r.body["errors"][0].get<std::string>()
               : std::string();
  }
  // Reads secret/app/db wrapped and returns the wrapping token.
  std::string wrapped_read(const std::string& ttl = "60s") {
    Reply r = call("GET", "secret/app/db", root_, "", wrap(ttl));
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.body["wrap_info"]["token"].get<std::string>();
  }

  std::unique_ptr<auth::TokenStore> tokens_;
  std::unique_ptr<auth::PolicyStore> policies_;
  std::unique_ptr<auth::CertRoleStore> cert_roles_;
  std::unique_ptr<engines::KvEngine> kv_;
  std::unique_ptr<engines::WrappingEngine> wrapping_;
  std::unique_ptr<auth::NonceGuard> nonces_;
  std::unique_ptr<VaultRouter> router_;
  std::atomic<std::int64_t> now_{kStart};
  std::string root_;
};

TEST_F(WrappingRouterTest, WrappedReadGivesOnlyWrapInfoAndUnwrapsOnce) {
  Reply r = call("GET", "secret/app/db", root_, "", wrap("60s"));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_TRUE(r.body["data"].is_null());
  EXPECT_TRUE(r.body["auth"].is_null());
  EXPECT_EQ(r.raw.find("pw-1"), std::string::npos);
  const json& info = r.body["wrap_info"];
  EXPECT_EQ(info["ttl"], 60);
  EXPECT_EQ(info["creation_path"], "secret/app/db");
  EXPECT_EQ(info["creation_time"], "2023-11-14T22:13:20Z");
  EXPECT_FALSE(info.contains("wrapped_accessor"));
  const std::string token = info["token"];
  EXPECT_EQ(token.substr(0, 4), "hvs.");

  // The wrapping token is not bound to the certificate that asked: another party unwraps it.
  Reply u = call("PUT", "sys/wrapping/unwrap", token, "", {}, kOtherCert);
  ASSERT_EQ(u.status, 200) << u.raw;
  EXPECT_EQ(u.body["data"], json({{"password", "pw-1"}}));
  EXPECT_EQ(u.body["lease_duration"], 2764800);
  EXPECT_EQ(u.body["request_id"], r.body["request_id"]) << "the original response, as stored";

  Reply again = call("PUT", "sys/wrapping/unwrap", token);
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(again.body, json({{"errors", {"wrapping token is not valid or does not exist"}}}));
}

TEST_F(WrappingRouterTest, WrapTtlHeaderIsCheckedBeforeAnythingRuns) {
  for (const char* bad : {"abc", "-5", "0", "0s", "25h", "90000"}) {
    Reply r = call("GET", "secret/app/db", root_, "", wrap(bad));
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_THAT(error(r), HasSubstr("X-Vault-Wrap-TTL")) << bad;
    EXPECT_EQ(r.raw.find("pw-1"), std::string::npos);
  }
  for (const char* good : {"1", "60", "1m", "24h", "1h30m"}) {
    EXPECT_EQ(call("GET", "secret/app/db", root_, "", wrap(good)).body["wrap_info"].is_object(), true) << good;
  }
  Reply jwt = call("GET", "secret/app/db", root_, "", {{"x-vault-wrap-ttl", "60"}, {"x-vault-wrap-format", "jwt"}});
  EXPECT_EQ(jwt.status, 400);
  // A write has nothing to wrap: 204 as usual.
  EXPECT_EQ(call("PUT", "secret/app/new", root_, R"({"a":"b"})", wrap("60")).status, 204);
}

TEST_F(WrappingRouterTest, WrappingTokensAreConfinedToTheWrappingEndpoints) {
  const std::string token = wrapped_read();
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "secret/app/db"},
           {"GET", "auth/token/lookup-self"},
           {"PUT", "auth/token/renew-self"},
           {"PUT", "auth/token/create"},
           {"PUT", "sys/wrapping/wrap"},
           {"GET", "sys/policies/acl/default"}}) {
    Reply r = call(method, path, token, "{}", wrap("60"));
    EXPECT_EQ(r.status, 403) << method << " " << path << ": " << r.raw;
  }
  // Looked up (the wrapping token itself may), then still unwrappable exactly once.
  Reply looked = call("PUT", "sys/wrapping/lookup", token);
  ASSERT_EQ(looked.status, 200) << looked.raw;
  EXPECT_EQ(looked.body["data"]["creation_path"], "secret/app/db");
  EXPECT_EQ(looked.body["creation_ttl"], 60) << "sys/ responses repeat data at the top level";
  EXPECT_EQ(call("PUT", "sys/wrapping/unwrap", token).status, 200);
}

TEST_F(WrappingRouterTest, NotBothTheHeaderAndTheBody) {
  const std::string token = wrapped_read();
  Reply both = call("PUT", "sys/wrapping/unwrap", token, json({{"token", token}}).dump());
  EXPECT_EQ(both.status, 400);
  EXPECT_THAT(error(both), HasSubstr("both"));
  // Nothing was consumed by the refusal.
  EXPECT_EQ(call("PUT", "sys/wrapping/unwrap", token).status, 200);
}

TEST_F(WrappingRouterTest, ThirdPartyUnwrapNeedsAnOrdinaryTokenWithUpdate) {
  const std::string token = wrapped_read();
  // No token of one's own: 403 (only lookup is unauthenticated).
  EXPECT_EQ(call("PUT", "sys/wrapping/unwrap", "", json({{"token", token}}).dump()).status, 403);
  // A token whose policies do not grant update on sys/wrapping/unwrap.
  const std::string bare = token_with({"nothing"});
  EXPECT_EQ(call("PUT", "sys/wrapping/unwrap", bare, json({{"token", token}}).dump()).status, 403);
  // The default policy grants it, as Vault's does.
  const std::string unit = token_with({"default"});
  Reply ok = call("PUT", "sys/wrapping/unwrap", unit, json({{"token", token}}).dump());
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body["data"]["password"], "pw-1");
  EXPECT_EQ(call("PUT", "sys/wrapping/unwrap", unit, json({{"token", token}}).dump()).status, 400);
  // An ordinary token in the header wraps nothing, and is not consumed.
  EXPECT_EQ(error(call("PUT", "sys/wrapping/unwrap", unit)), "wrapping token is not valid or does not exist");
  EXPECT_EQ(call("GET", "auth/token/lookup-self", unit).status, 200);
  // Malformed body tokens.
  EXPECT_EQ(error(call("PUT", "sys/wrapping/unwrap", unit, R"({"token": 5})")), "could not decode token in request body");
  EXPECT_EQ(error(call("PUT", "sys/wrapping/unwrap", unit, R"({"token": ""})")), "empty token in request body");
  EXPECT_EQ(call("GET", "sys/wrapping/unwrap", unit).status, 405);
}

TEST_F(WrappingRouterTest, LookupIsUnauthenticatedAndRewrapKillsTheOldToken) {
  const std::string token = wrapped_read("300");
  Reply looked = call("PUT", "sys/wrapping/lookup", "", json({{"token", token}}).dump());
  ASSERT_EQ(looked.status, 200) << looked.raw;
  EXPECT_EQ(looked.body["data"]["creation_ttl"], 300);
  EXPECT_EQ(looked.body["data"]["creation_time"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(error(call("PUT", "sys/wrapping/lookup", "", R"({"token":"hvs.unknown"})")),
            "wrapping token is not valid or does not exist");
  EXPECT_EQ(call("PUT", "sys/wrapping/lookup", "", "{}").status, 400);

  now_ += 10;
  Reply re = call("PUT", "sys/wrapping/rewrap", token);  // the wrapping token rewraps itself
  ASSERT_EQ(re.status, 200) << re.raw;
  const std::string fresh = re.body["wrap_info"]["token"];
  EXPECT_NE(fresh, token);
  EXPECT_EQ(re.body["wrap_info"]["ttl"], 300);
  EXPECT_EQ(re.body["wrap_info"]["creation_path"], "secret/app/db");
  EXPECT_FALSE(re.body["wrap_info"].contains("wrapped_accessor")) << "a secret read carries no accessor";
  EXPECT_EQ(call("PUT", "sys/wrapping/unwrap", token).status, 400);
  // Third-party rewrap needs update on sys/wrapping/rewrap (not in the default policy).
  const std::string unit = token_with({"default"});
  EXPECT_EQ(call("PUT", "sys/wrapping/rewrap", unit, json({{"token", fresh}}).dump()).status, 403);
  Reply re2 = call("PUT", "sys/wrapping/rewrap", root_, json({{"token", fresh}}).dump());
  ASSERT_EQ(re2.status, 200) << re2.raw;
  EXPECT_EQ(call("PUT", "sys/wrapping/unwrap", fresh).status, 400);
  Reply u = call("PUT", "sys/wrapping/unwrap", re2.body["wrap_info"]["token"].get<std::string>());
  EXPECT_EQ(u.body["data"]["password"], "pw-1");
}

TEST_F(WrappingRouterTest, SysWrappingWrapNeedsTheHeader) {
  const std::string unit = token_with({"default"});
  Reply none = call("PUT", "sys/wrapping/wrap", unit, R"({"foo":"bar"})");
  EXPECT_EQ(none.status, 400);
  EXPECT_EQ(error(none), "endpoint requires response wrapping to be used");
  Reply w = call("PUT", "sys/wrapping/wrap", unit, R"({"foo":"bar","zip":{"zap":1}})", wrap("2m"));
  ASSERT_EQ(w.status, 200) << w.raw;
  EXPECT_EQ(w.body["wrap_info"]["creation_path"], "sys/wrapping/wrap");
  EXPECT_EQ(w.body["wrap_info"]["ttl"], 120);
  Reply u = call("PUT", "sys/wrapping/unwrap", w.body["wrap_info"]["token"].get<std::string>());
  ASSERT_EQ(u.status, 200) << u.raw;
  EXPECT_EQ(u.body["data"], json::parse(R"({"foo":"bar","zip":{"zap":1}})"));
  EXPECT_EQ(call("PUT", "sys/wrapping/wrap", token_with({"nothing"}), "{}", wrap("60")).status, 403);
}

TEST_F(WrappingRouterTest, WrappedAuthResponseNamesTheWrappedAccessor) {
  Reply r = call("PUT", "auth/token/create", root_, R"({"policies":["default"],"ttl":"1h"})", wrap("60"));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_TRUE(r.body["auth"].is_null());
  const std::string accessor = r.body["wrap_info"]["wrapped_accessor"];
  // A rewrap names it again (read back from the sealed response).
  Reply re = call("PUT", "sys/wrapping/rewrap", r.body["wrap_info"]["token"].get<std::string>());
  ASSERT_EQ(re.status, 200) << re.raw;
  EXPECT_EQ(re.body["wrap_info"]["wrapped_accessor"], accessor);
  Reply u = call("PUT", "sys/wrapping/unwrap", re.body["wrap_info"]["token"].get<std::string>());
  ASSERT_EQ(u.status, 200) << u.raw;
  EXPECT_EQ(u.body["auth"]["accessor"], accessor);
  EXPECT_EQ(call("GET", "auth/token/lookup-self", u.body["auth"]["client_token"].get<std::string>()).status, 200);
}

TEST_F(WrappingRouterTest, ExpiredWrappingTokenIsRefusedWithVaultsMessage) {
  const std::string token = wrapped_read("1");
  now_ += 2;
  Reply r = call("PUT", "sys/wrapping/unwrap", token);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error(r), "wrapping token is not valid or does not exist");
  EXPECT_EQ(call("PUT", "sys/wrapping/lookup", "", json({{"token", token}}).dump()).status, 400);
}

TEST_F(WrappingRouterTest, ConcurrentUnwrapsThroughTheRouterExactlyOne) {
  const std::string token = wrapped_read();
  constexpr int kThreads = 16;
  std::atomic<int> go{0};
  std::atomic<int> ok{0};
  std::atomic<int> invalid{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      go.fetch_add(1);
      while (go.load() < kThreads) std::this_thread::yield();
      Reply r = call("PUT", "sys/wrapping/unwrap", token);
      if (r.status == 200) ok.fetch_add(1);
      if (r.status == 400) invalid.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(invalid.load(), kThreads - 1);
}

TEST_F(WrappingRouterTest, PolicyWrappingTtlBounds) {
  ASSERT_OK(policies_->put("bootstrap", R"(
path "secret/app/*" {
  capabilities = ["read", "list"]
  min_wrapping_ttl = "30s"
  max_wrapping_ttl = "90s"
}
path "secret/open" { capabilities = ["read"] })"));
  const std::string unit = token_with({"bootstrap"});
  Reply plain = call("GET", "secret/app/db", unit);
  EXPECT_EQ(plain.status, 403);
  EXPECT_EQ(plain.body["errors"][0], "permission denied");
  EXPECT_THAT(plain.body["errors"][1].get<std::string>(), HasSubstr("at least 30s"));
  EXPECT_EQ(plain.raw.find("pw-1"), std::string::npos);
  Reply low = call("GET", "secret/app/db", unit, "", wrap("10s"));
  EXPECT_EQ(low.status, 403);
  EXPECT_THAT(low.body["errors"][1].get<std::string>(), HasSubstr("below this path's min_wrapping_ttl of 30s"));
  Reply high = call("GET", "secret/app/db", unit, "", wrap("120"));
  EXPECT_EQ(high.status, 403);
  EXPECT_THAT(high.body["errors"][1].get<std::string>(), HasSubstr("exceeds this path's max_wrapping_ttl of 90s"));
  EXPECT_EQ(call("LIST", "secret/app", unit).status, 403);
  Reply ok = call("GET", "secret/app/db", unit, "", wrap("60"));
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(call("LIST", "secret/app", unit, "", wrap("60")).status, 200);
  Reply u = call("PUT", "sys/wrapping/unwrap", ok.body["wrap_info"]["token"].get<std::string>());
  EXPECT_EQ(u.body["data"]["password"], "pw-1");
}

TEST_F(WrappingRouterTest, RequestNonceRefusesReplaysAndStaleTimestamps) {
  const std::string nonce = std::to_string(kStart) + ".abcdefghij0123456789";
  Reply first = call("PUT", "secret/app/db", root_, R"({"password":"pw-2"})", {{"x-coffer-nonce", nonce}});
  EXPECT_EQ(first.status, 204) << first.raw;
  Reply replay = call("PUT", "secret/app/db", root_, R"({"password":"pw-evil"})", {{"x-coffer-nonce", nonce}});
  EXPECT_EQ(replay.status, 409);
  EXPECT_EQ(replay.body, json({{"errors", {"request nonce has already been used"}}}));
  // Another client certificate has its own scope.
  EXPECT_EQ(call("PUT", "secret/app/other", root_, "{}", {{"x-coffer-nonce", nonce}}, kOtherCert).status, 204);
  // DELETE is state-changing too; POST is PUT.
  EXPECT_EQ(call("DELETE", "secret/app/other", root_, "", {{"x-coffer-nonce", nonce}}, kOtherCert).status, 409);

  const std::string stale = std::to_string(kStart - 301) + ".abcdefghij0123456789xyz";
  Reply old = call("PUT", "secret/app/db", root_, R"({"password":"pw-3"})", {{"x-coffer-nonce", stale}});
  EXPECT_EQ(old.status, 400);
  EXPECT_THAT(error(old), HasSubstr("301s behind"));
  Reply bad = call("PUT", "secret/app/db", root_, R"({"password":"pw-3"})", {{"x-coffer-nonce", "not-a-nonce"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(error(bad), HasSubstr("malformed X-Coffer-Nonce"));
  // Reads are not state-changing: the header is ignored there.
  EXPECT_EQ(call("GET", "secret/app/db", root_, "", {{"x-coffer-nonce", "not-a-nonce"}}).status, 200);
  // Nothing but the first write happened.
  EXPECT_EQ(call("GET", "secret/app/db", root_).body["data"]["password"], "pw-2");
  // A refused-before-authentication replay still costs nothing: the nonce check runs first.
  EXPECT_EQ(call("PUT", "secret/app/db", "hvs.bogus", "{}", {{"x-coffer-nonce", nonce}}).status, 409);
}

}  // namespace
}  // namespace coffer::api
