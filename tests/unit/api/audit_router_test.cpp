// The router's audit path and its KV read answer, in process: a real sqlite file, a FakeProtector
// keyring, the real stores and engines, an AuditLog on a real file, and typed HttpRequests (no
// TLS; tests/integration/test_audit.py drives the same through cofferd). Covers what the audit
// records of a read, a refusal and a write contain (the members both records share are the
// same; secrets, tokens and accessors only as HMACs; the chain verifies), and that a KV read
// built from the stored text is byte for byte the DOM-built envelope, "ttl" included.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "api/vault_json.h"
#include "api/vault_router.h"
#include "audit/verify.h"
#include "tests/support/sealed_store.h"
#include "tests/unit/storage/storage_test_util.h"

namespace coffer::api {
namespace {

using coffer::testing::TempDir;
using json = nlohmann::json;

const std::string kCert = std::string(64, 'c');

struct Reply {
  int status = 0;
  json body;
  std::string raw;
};

class AuditRouterTest : public coffer::testing::SealedStoreTest {
 protected:
  void SetUp() override {
    SealedStoreTest::SetUp();
    if (HasFatalFailure()) return;
    tokens_ = std::make_unique<auth::TokenStore>(*db_, keyring_->token_hash_key());
    policies_ = std::make_unique<auth::PolicyStore>(*db_);
    auto roles = auth::CertRoleStore::load(*db_);
    ASSERT_OK(roles);
    cert_roles_ = std::move(roles).value();
    kv_ = std::make_unique<engines::KvEngine>(*barrier_);
    auto sink = audit::FileSink::open(audit_path());
    ASSERT_OK(sink);
    auto log = audit::AuditLog::open(std::move(sink).value(), keyring_->audit_hmac_key(), db_.get(), {});
    ASSERT_OK(log);
    audit_ = std::move(log).value();
    router_ = std::make_unique<VaultRouter>(Services{*tokens_, *policies_, *cert_roles_, *kv_, ServerInfo{}},
                                            audit_.get());
    auth::TokenSpec root;
    root.policies = {"root"};
    root.no_expiry = true;
    auto t = tokens_->create(root);
    ASSERT_OK(t);
    root_ = std::string(t->token.view(crypto::reveal()));
    root_accessor_ = t->accessor;
  }

  std::string audit_path() const { return dir_.file("audit.log"); }

  Reply call(const std::string& method, const std::string& path, const std::string& token,
             const std::string& body = "", const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    HttpRequest req;
    for (const auto& [name, value] : headers) {
      req.headers.emplace_back(name, crypto::SecretString(value.begin(), value.end()));
    }
    req.method = method;
    req.path = "/v1/" + path;
    req.remote_address = "127.0.0.1";
    req.remote_port = 40000;
    req.peer.fingerprint_sha256_hex = kCert;
    if (!token.empty()) req.headers.emplace_back("x-vault-token", crypto::SecretString(token.begin(), token.end()));
    req.body = crypto::SecretBytes::copy_of(body);
    HttpResponse resp = router_->handle(req);
    Reply r;
    r.status = resp.status;
    r.raw = std::string(resp.body.view(crypto::reveal()));
    if (!r.raw.empty()) r.body = json::parse(r.raw, nullptr, false);
    return r;
  }

  std::vector<json> records() const {
    std::ifstream in(audit_path());
    std::vector<json> out;
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }
  std::string audit_bytes() const {
    std::ifstream in(audit_path());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string hmac(const std::string& v) const {
    auto h = audit_->hash(v);
    EXPECT_OK(h);
    return h.ok() ? *h : std::string();
  }
  void expect_chain_verifies() {
    ASSERT_OK(audit_->close());
    auto ck = audit::derive_checkpoint_key(keyring_->audit_hmac_key());
    ASSERT_OK(ck);
    audit::VerifyOptions o;
    o.checkpoint_key = &*ck;
    auto r = audit::verify_files({audit_path()}, o);
    ASSERT_OK(r);
    EXPECT_TRUE(r->ok()) << r->failure->problem;
  }
  // The DOM-built answer a KV read gave before it was built from the stored text.
  static std::string dom_read_answer(const std::string& request_id, const std::string& stored, std::int64_t lease) {
    SecretJson e = envelope(request_id);
    e["lease_duration"] = lease;
    e["data"] = SecretJson::parse(stored);
    e["mount_type"] = "kv";
    return std::string(json_response(200, e).body.view(crypto::reveal()));
  }

  std::unique_ptr<auth::TokenStore> tokens_;
  std::unique_ptr<auth::PolicyStore> policies_;
  std::unique_ptr<auth::CertRoleStore> cert_roles_;
  std::unique_ptr<engines::KvEngine> kv_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<VaultRouter> router_;
  std::string root_;
  std::string root_accessor_;
};

TEST_F(AuditRouterTest, ReadIsTheDomEnvelopeAndItsRecordsShareTheRequestAndAuth) {
  const std::string stored = R"({"password":"pw-marker-1","pin":424242,"url":"db.internal"})";
  ASSERT_OK(kv_->write("app/db", SecretJson::parse(stored)));
  Reply r = call("GET", "secret/app/db", root_);
  ASSERT_EQ(r.status, 200) << r.raw;
  const std::string id = r.body["request_id"].get<std::string>();
  EXPECT_EQ(r.raw, dom_read_answer(id, stored, engines::kDefaultKvLeaseSeconds));

  const std::string bytes = audit_bytes();
  for (const std::string& secret : {std::string("pw-marker-1"), std::string("424242"), root_, root_accessor_}) {
    EXPECT_EQ(bytes.find(secret), std::string::npos) << secret << " in clear in the audit log";
  }
  auto recs = records();
  ASSERT_GE(recs.size(), 2u);
  const json& req = recs[recs.size() - 2];
  const json& resp = recs.back();
  EXPECT_EQ(req["type"], "request");
  EXPECT_EQ(resp["type"], "response");
  EXPECT_EQ(req["request"], resp["request"]);
  EXPECT_EQ(req["auth"], resp["auth"]);
  EXPECT_EQ(req["request"]["id"], id);
  EXPECT_EQ(req["request"]["path"], "secret/app/db");
  EXPECT_EQ(req["request"]["mount_type"], "kv");
  EXPECT_EQ(req["request"]["client_token"], hmac(root_));
  EXPECT_EQ(req["auth"]["client_token"], hmac(root_));
  EXPECT_EQ(req["auth"]["accessor"], hmac(root_accessor_));
  EXPECT_EQ(req["auth"]["policies"], json::array({"root"}));
  EXPECT_FALSE(req.contains("response"));
  EXPECT_FALSE(req.contains("error"));
  EXPECT_EQ(resp["response"]["status_code"], 200);
  EXPECT_EQ(resp["response"]["mount_type"], "kv");
  EXPECT_EQ(resp["response"]["data"]["password"], hmac("pw-marker-1"));
  EXPECT_EQ(resp["response"]["data"]["pin"], hmac("424242"));
  EXPECT_EQ(resp["seq"].get<std::uint64_t>(), req["seq"].get<std::uint64_t>() + 1);
  expect_chain_verifies();
}

TEST_F(AuditRouterTest, RefusedRequestHasBothRecordsWithTheError) {
  const std::string bad = "hvs.not-a-token-at-all";
  Reply r = call("GET", "secret/app/db", bad);
  EXPECT_EQ(r.status, 403);
  auto recs = records();
  ASSERT_GE(recs.size(), 2u);
  const json& req = recs[recs.size() - 2];
  const json& resp = recs.back();
  EXPECT_EQ(req["type"], "request");
  EXPECT_EQ(resp["type"], "response");
  EXPECT_EQ(req["request"], resp["request"]);
  EXPECT_EQ(req["request"]["client_token"], hmac(bad));
  EXPECT_FALSE(req.contains("auth"));
  EXPECT_EQ(req["error"], "permission denied; invalid token");
  EXPECT_EQ(resp["error"], req["error"]);
  EXPECT_EQ(resp["response"]["status_code"], 403);
  EXPECT_EQ(resp["seq"].get<std::uint64_t>(), req["seq"].get<std::uint64_t>() + 1);
  EXPECT_EQ(audit_bytes().find(bad), std::string::npos);
  expect_chain_verifies();
}

// What coffer cannot do (a non-root namespace, a bad X-Vault-Wrap-TTL) is refused like any other
// refusal: audited with its error, and the token never looked at.
TEST_F(AuditRouterTest, UnsupportedRequestsAreAuditedRefusals) {
  const std::pair<std::pair<std::string, std::string>, std::string> cases[] = {
      {{"x-vault-namespace", "team-a"}, "namespaces are not supported: only the root namespace exists"},
      {{"x-vault-wrap-ttl", "soon"}, ""},
  };
  for (const auto& [header, message] : cases) {
    SCOPED_TRACE(header.first);
    const std::size_t before = records().size();
    Reply r = call("GET", "secret/app/db", root_, "", {header});
    EXPECT_EQ(r.status, 400);
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    const std::string error = r.body["errors"][0].get<std::string>();
    if (!message.empty()) {
      EXPECT_EQ(error, message);
    }
    auto recs = records();
    ASSERT_EQ(recs.size(), before + 2);
    const json& req = recs[recs.size() - 2];
    const json& resp = recs.back();
    EXPECT_EQ(req["type"], "request");
    EXPECT_EQ(req["error"], error);
    EXPECT_EQ(resp["error"], error);
    EXPECT_EQ(resp["response"]["status_code"], 400);
    EXPECT_EQ(req["request"]["path"], "secret/app/db");
    EXPECT_EQ(req["request"]["client_token"], hmac(root_));
    EXPECT_FALSE(req.contains("auth")) << "refused before the token was looked up";
  }
  // A well-formed wrap TTL on a server without the wrapping engine: refused, and the record
  // carries the TTL asked for, in clear (Vault's request.wrap_ttl).
  Reply r = call("GET", "secret/app/db", root_, "", {{"x-vault-wrap-ttl", "90s"}});
  EXPECT_EQ(r.status, 400);
  auto recs = records();
  ASSERT_GE(recs.size(), 2u);
  EXPECT_EQ(recs[recs.size() - 2]["request"]["wrap_ttl"], 90);
  EXPECT_EQ(recs.back()["request"]["wrap_ttl"], 90);
  expect_chain_verifies();
}

TEST_F(AuditRouterTest, WriteBodyIsHmacdAndAMalformedOneIsRecordedAsOneValue) {
  Reply w = call("PUT", "secret/app/new", root_, R"({"password":"pw-marker-2","n":7})");
  EXPECT_EQ(w.status, 204) << w.raw;
  Reply bad = call("PUT", "secret/app/bad", root_, R"({"password":"pw-marker-3")");
  EXPECT_EQ(bad.status, 400) << bad.raw;
  auto recs = records();
  ASSERT_GE(recs.size(), 4u);
  const json& wreq = recs[recs.size() - 4];
  EXPECT_EQ(wreq["request"]["data"]["password"], hmac("pw-marker-2"));
  EXPECT_EQ(wreq["request"]["data"]["n"], hmac("7"));
  const json& breq = recs[recs.size() - 2];
  EXPECT_EQ(breq["request"]["data"], hmac(R"({"password":"pw-marker-3")"));
  EXPECT_EQ(recs.back()["response"]["status_code"], 400);
  const std::string bytes = audit_bytes();
  EXPECT_EQ(bytes.find("pw-marker-2"), std::string::npos);
  EXPECT_EQ(bytes.find("pw-marker-3"), std::string::npos);
  expect_chain_verifies();
}

// The SAX pass over the stored text reads the top-level "ttl" as Vault does (a duration string
// or a non-negative whole number; anything else, or a nested "ttl", leaves the mount default),
// and the answer is the stored object as written.
TEST_F(AuditRouterTest, ReadFromTextTakesTheTtlForEveryKindOfValue) {
  constexpr std::int64_t kDefault = engines::kDefaultKvLeaseSeconds;
  const std::pair<std::string, std::int64_t> cases[] = {
      {R"({"a":"b"})", kDefault},
      {R"({"ttl":"1h","v":1})", 3600},
      {R"({"ttl":90})", 90},
      {R"({"ttl":-5})", kDefault},
      {R"({"ttl":1.5})", kDefault},
      {R"({"ttl":"soon"})", kDefault},
      {R"({"ttl":{"nested":"1h"}})", kDefault},
      {R"({"nested":{"ttl":"1h"},"list":[{"ttl":60}]})", kDefault},
      {R"({"ttl":null,"x":[1,2,[3,{"y":"z"}]],"e":{},"f":[]})", kDefault},
      {R"({"unicode":"é😀\u0001","esc":"q\"b\\n"})", kDefault},
  };
  for (const auto& [text, lease] : cases) {
    const auto data = SecretJson::parse(text);
    ASSERT_OK(kv_->write("ttl/case", data));
    auto raw = kv_->read_text("ttl/case");
    ASSERT_OK(raw);
    ASSERT_TRUE(raw->has_value());
    EXPECT_EQ((*raw)->lease_duration, lease) << text;
    Reply r = call("GET", "secret/ttl/case", root_);
    ASSERT_EQ(r.status, 200) << text;
    const auto canonical = data.dump();
    EXPECT_EQ(r.raw, dom_read_answer(r.body["request_id"].get<std::string>(),
                                     std::string(canonical.begin(), canonical.end()), lease))
        << text;
  }
  auto missing = kv_->read_text("ttl/none");
  ASSERT_OK(missing);
  EXPECT_FALSE(missing->has_value());
  EXPECT_EQ(call("GET", "secret/ttl/none", root_).status, 404);
}

// Text that is not one JSON object is refused (a stored record can only be what coffer wrote, so
// this is a bug check, not a tamper check).
TEST_F(AuditRouterTest, ReadTextRefusesWhatIsNotOneObject) {
  for (const std::string text : {"[1,2]", "\"s\"", "42", "{\"a\":1} {}", "{\"a\":", ""}) {
    ASSERT_OK(barrier_->write(kv_->mount(), "odd/case", crypto::SecretBytes::copy_of(text)));
    EXPECT_EQ(kv_->read_text("odd/case").status().code(), Code::internal) << text;
  }
}

}  // namespace
}  // namespace coffer::api
