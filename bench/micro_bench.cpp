// micro_bench: Google Benchmark micro-benchmarks of coffer's per-request crypto and auth path
// (issue 7): AEAD seal/open of a ~100 byte record, the storage barrier (seal + sqlite, open +
// sqlite), token lookup by hash on a real sqlite file, ACL evaluation, and SecretJson parse/dump.
// The issue's floor: AES-GCM of 100 bytes about 0.5 us, a token hash about 0.1 us.
//
//   build/bench/micro_bench [--benchmark_filter=...] [--benchmark_min_time=0.2]
//
// Uses a temporary directory under $TMPDIR (removed at exit) and the software FakeProtector for
// the keyring (the HSM is never on these paths: the keyring is unwrapped once at load).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/rate_limit.h"
#include "api/vault_router.h"
#include "audit/audit_log.h"
#include "audit/chain.h"
#include "audit/record.h"
#include "audit/sink.h"
#include "audit/verify.h"
#include "auth/login_lockout.h"
#include "auth/policy.h"
#include "auth/token_store.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "crypto/secret_bytes.h"
#include "crypto/secret_json.h"
#include "crypto/x509.h"
#include "engines/kv_engine.h"
#include "keys/keyring.h"
#include "storage/barrier.h"
#include "storage/sqlite_storage.h"
#include "tests/support/fake_protector.h"
#include "tests/unit/auth/test_pki.h"

namespace {

using namespace coffer;

const std::string kRecord =
    R"({"username":"svc-app","password":"c0ffee-0123456789abcdef0123456789abcdef","note":"benchmark"})";

template <typename T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "micro_bench: %s failed: %s\n", what, r.status().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

void must(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "micro_bench: %s failed: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

// One sqlite file with an initialised keyring, shared by the storage-backed benchmarks.
struct Fixture {
  std::filesystem::path dir;
  std::unique_ptr<storage::SqliteStorage> storage;
  testing::FakeProtector protector;
  std::unique_ptr<keys::Keyring> keyring;

  Fixture() {
    std::string templ = (std::filesystem::temp_directory_path() / "coffer-micro-XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) {
      std::perror("micro_bench: mkdtemp");
      std::exit(1);
    }
    dir = templ;
    storage = must(storage::SqliteStorage::open((dir / "coffer.db").string(), true), "open sqlite");
    must(protector.create_master_key(), "create master key");
    must(keys::Keyring::initialize(*storage, protector), "keyring init");
    keyring = must(keys::Keyring::load(*storage, protector), "keyring load");
  }
  ~Fixture() {
    keyring.reset();
    storage.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Fixture& fixture() {
  static Fixture f;  // benchmark-process scope only; destroyed at exit, removing the files
  return f;
}

void BM_AeadSeal(benchmark::State& state) {
  auto key = must(crypto::random_key(crypto::kAeadKeySize), "random key");
  const auto aad = crypto::as_bytes("CFR1....secret/app/config");
  for (auto _ : state) {
    auto sealed = crypto::aead_seal(key, crypto::as_bytes(kRecord), aad);
    benchmark::DoNotOptimize(sealed);
  }
}
BENCHMARK(BM_AeadSeal);

void BM_AeadOpen(benchmark::State& state) {
  auto key = must(crypto::random_key(crypto::kAeadKeySize), "random key");
  const auto aad = crypto::as_bytes("CFR1....secret/app/config");
  auto sealed = must(crypto::aead_seal(key, crypto::as_bytes(kRecord), aad), "seal");
  for (auto _ : state) {
    auto plain = crypto::aead_open(key, sealed, aad);
    benchmark::DoNotOptimize(plain);
  }
}
BENCHMARK(BM_AeadOpen);

// Barrier::read = one sqlite SELECT (prepared, cached) + DEK lookup + AEAD open.
void BM_BarrierRead(benchmark::State& state) {
  auto& f = fixture();
  storage::Barrier barrier(*f.storage, *f.keyring);
  must(barrier.write("secret/", "bench/read", crypto::SecretBytes::copy_of(crypto::as_bytes(kRecord))),
       "barrier write");
  for (auto _ : state) {
    auto r = barrier.read("secret/", "bench/read");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_BarrierRead);

// Barrier::write = AEAD seal + one durable sqlite transaction (WAL, synchronous=FULL: an fsync).
// With several threads, concurrent writes share a group commit: items/s is the durable write
// rate, and it should grow with the thread count while one thread stays fsync-bound.
void BM_BarrierWrite(benchmark::State& state) {
  auto& f = fixture();
  storage::Barrier barrier(*f.storage, *f.keyring);
  auto plain = crypto::SecretBytes::copy_of(crypto::as_bytes(kRecord));
  std::uint64_t n = 0;
  const std::string prefix = "bench/w" + std::to_string(state.thread_index()) + "/";
  for (auto _ : state) {
    auto s = barrier.write("secret/", prefix + std::to_string(n++ % 64), plain);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BarrierWrite)->UseRealTime()->Threads(1)->Threads(8)->Threads(32);

// TokenStore::lookup = HMAC-SHA256 of the token + one SELECT by hash + row decoding.
void BM_TokenLookup(benchmark::State& state) {
  auto& f = fixture();
  auth::TokenStore tokens(*f.storage, f.keyring->token_hash_key());
  auth::TokenSpec spec;
  spec.policies = {"default", "web"};
  auto issued = must(tokens.create(spec), "token create");
  const std::string token(reinterpret_cast<const char*>(issued.token.data(crypto::reveal())),
                          issued.token.size());
  for (auto _ : state) {
    auto info = tokens.lookup(token, "");
    benchmark::DoNotOptimize(info);
  }
}
BENCHMARK(BM_TokenLookup);

const char kPolicy[] = R"(
path "secret/app/*" { capabilities = ["read", "list"] }
path "secret/app/admin" { capabilities = ["deny"] }
path "secret/+/shared" { capabilities = ["read"] }
path "secret/bench/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/bench/app" { capabilities = ["read"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
)";

std::shared_ptr<const auth::Acl> bench_acl() {
  auto web = std::make_shared<const auth::Policy>(must(auth::parse_policy("web", kPolicy), "parse policy"));
  auto def = std::make_shared<const auth::Policy>(
      must(auth::parse_policy("default", auth::default_policy_text()), "parse default policy"));
  return auth::Acl::build({def, web});
}

void BM_AclExactPath(benchmark::State& state) {
  auto acl = bench_acl();
  for (auto _ : state) benchmark::DoNotOptimize(acl->allows("secret/bench/app", auth::Capability::read));
}
BENCHMARK(BM_AclExactPath);

void BM_AclWildcardPath(benchmark::State& state) {
  auto acl = bench_acl();
  for (auto _ : state)
    benchmark::DoNotOptimize(acl->allows("secret/team/shared", auth::Capability::read));
}
BENCHMARK(BM_AclWildcardPath);

void BM_AclBuild(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(bench_acl());
}
BENCHMARK(BM_AclBuild);

void BM_SecretJsonParseDump(benchmark::State& state) {
  for (auto _ : state) {
    auto j = crypto::SecretJson::parse(kRecord);
    auto out = crypto::dump_secret(j);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_SecretJsonParseDump);

// One audit record (Vault's request entry shape, one secret value redacted) appended to a real
// file: range(0) = 1 fsyncs every record, 0 = group commit.
crypto::SecretJson audit_request_entry() {
  crypto::SecretJson e;
  e["type"] = "request";
  e["request"]["path"] = "secret/app/db";
  e["request"]["operation"] = "read";
  e["request"]["data"]["password"] = "value-of-the-secret";
  return e;
}

void BM_AuditAppend(benchmark::State& state) {
  Fixture& f = fixture();
  const std::string path = (f.dir / ("audit-" + std::to_string(state.range(0)) + ".log")).string();
  audit::AuditOptions options;
  options.fsync_always = state.range(0) == 1;
  auto log = must(audit::AuditLog::open(must(audit::FileSink::open(path), "audit sink"),
                                        f.keyring->audit_hmac_key(), nullptr, options),
                  "audit log");
  const crypto::SecretJson entry = audit_request_entry();
  for (auto _ : state) must(log->log(entry), "audit append");
  must(log->close(), "audit close");
}
BENCHMARK(BM_AuditAppend)->Arg(0)->Arg(1)->UseRealTime();

// The audit work of one audited secret read, as the router does it: a request record and a
// response record of Vault's full shape (request block, caller's auth block with token and
// accessor, the secret's three values in the response), group commit. "Records" builds them as
// audit::Records sharing the request and auth members (redacted once, api/vault_router.cpp);
// "Entries" logs the same two entries whole, each redacted on its own (the router before).
crypto::SecretJson audit_read_request() {
  crypto::SecretJson r;
  r["id"] = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
  r["operation"] = "read";
  r["path"] = "secret/bench/app";
  r["namespace"]["id"] = "root";
  r["remote_address"] = "127.0.0.1";
  r["remote_port"] = 51234;
  r["client_certificate_sha256"] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  r["mount_point"] = "secret/";
  r["mount_type"] = "kv";
  r["client_token"] = "hvs.Q1qWyVpm8EcUjsG3epDwOSNrPGPUuxUj";
  return r;
}

crypto::SecretJson audit_read_auth() {
  crypto::SecretJson a;
  a["client_token"] = "hvs.Q1qWyVpm8EcUjsG3epDwOSNrPGPUuxUj";
  a["accessor"] = "hLmT0xq3FkYpZ8wRc2Vn5sJd";
  a["display_name"] = "cert-web";
  a["policies"] = crypto::SecretJson::array({"default", "web"});
  a["token_policies"] = crypto::SecretJson::array({"default", "web"});
  a["token_type"] = "service";
  a["token_ttl"] = 3600;
  a["token_issue_time"] = 1764100000;
  a["metadata"]["cert_name"] = "web";
  a["metadata"]["common_name"] = "web01";
  return a;
}

crypto::SecretJson audit_read_response() {
  crypto::SecretJson out;
  out["status_code"] = 200;
  out["mount_type"] = "kv";
  out["data"] = crypto::SecretJson::parse(kRecord);
  return out;
}

std::unique_ptr<audit::AuditLog> bench_audit_log(const std::string& name) {
  Fixture& f = fixture();
  const std::string path = (f.dir / name).string();
  return must(audit::AuditLog::open(must(audit::FileSink::open(path), "audit sink"), f.keyring->audit_hmac_key(),
                                    nullptr, {}),
              "audit log");
}

void BM_AuditReadRecords(benchmark::State& state) {
  auto log = bench_audit_log("audit-read-records.log");
  for (auto _ : state) {
    // As the router builds them per request (the SecretJson blocks included).
    audit::Record request = log->record();
    must(request.set("request", audit_read_request()), "set request");
    must(request.set("auth", audit_read_auth()), "set auth");
    audit::Record response = request;
    must(request.set("type", crypto::SecretJson("request")), "set type");
    must(log->log(std::move(request)), "audit request");
    must(response.set("type", crypto::SecretJson("response")), "set type");
    must(response.set("response", audit_read_response()), "set response");
    must(log->log(std::move(response)), "audit response");
  }
  must(log->close(), "audit close");
}
BENCHMARK(BM_AuditReadRecords)->UseRealTime();

void BM_AuditReadEntries(benchmark::State& state) {
  auto log = bench_audit_log("audit-read-entries.log");
  for (auto _ : state) {
    crypto::SecretJson e;
    e["type"] = "request";
    e["request"] = audit_read_request();
    e["auth"] = audit_read_auth();
    must(log->log(e), "audit request");
    e["type"] = "response";
    e["response"] = audit_read_response();
    must(log->log(e), "audit response");
  }
  must(log->close(), "audit close");
}
BENCHMARK(BM_AuditReadEntries)->UseRealTime();

// One keep-alive secret read as the router answers it, in process (no TLS, no sockets): token
// lookup, ACL, the KV read and the response body, and with range(0) = 1 the two audit records
// (group commit). What cofferd adds to a bare HTTP server per read, less libmicrohttpd's share.
void BM_RouterRead(benchmark::State& state) {
  Fixture& f = fixture();
  static auth::TokenStore tokens(*f.storage, f.keyring->token_hash_key());
  static auth::PolicyStore policies(*f.storage);
  static std::unique_ptr<auth::CertRoleStore> roles = must(auth::CertRoleStore::load(*f.storage), "cert roles");
  static storage::Barrier barrier(*f.storage, *f.keyring);
  static engines::KvEngine kv(barrier);
  static const std::string token = [] {
    auth::TokenSpec spec;
    spec.policies = {"root"};
    spec.no_expiry = true;
    auto issued = must(tokens.create(spec), "token create");
    must(kv.write("bench/app", crypto::SecretJson::parse(kRecord)), "kv write");
    return std::string(issued.token.view(crypto::reveal()));
  }();
  std::unique_ptr<audit::AuditLog> log;
  if (state.range(0) == 1) log = bench_audit_log("audit-router.log");
  api::VaultRouter router(api::Services{tokens, policies, *roles, kv, api::ServerInfo{}}, log.get());
  api::HttpRequest req;
  req.method = "GET";
  req.path = "/v1/secret/bench/app";
  req.remote_address = "127.0.0.1";
  req.remote_port = 40000;
  req.peer.fingerprint_sha256_hex = std::string(64, 'c');
  req.headers.emplace_back("host", "127.0.0.1");
  req.headers.emplace_back("x-vault-token", crypto::SecretString(token.begin(), token.end()));
  for (auto _ : state) {
    api::HttpResponse r = router.handle(req);
    if (r.status != 200) state.SkipWithError("read failed");
    benchmark::DoNotOptimize(r);
  }
  if (log) must(log->close(), "audit close");
}
BENCHMARK(BM_RouterRead)->Arg(0)->Arg(1);

// Verifying a log of range(0) records (chain + checkpoint MACs); issue 5 asks for 1 million.
void BM_AuditVerify(benchmark::State& state) {
  Fixture& f = fixture();
  const std::int64_t n = state.range(0);
  const std::string path = (f.dir / ("audit-verify-" + std::to_string(n) + ".log")).string();
  {
    auto log = must(audit::AuditLog::open(must(audit::FileSink::open(path), "audit sink"),
                                          f.keyring->audit_hmac_key(), nullptr, {}),
                    "audit log");
    const crypto::SecretJson entry = audit_request_entry();
    for (std::int64_t i = 0; i < n; ++i) must(log->log(entry), "audit append");
    must(log->close(), "audit close");
  }
  auto checkpoint_key = must(audit::derive_checkpoint_key(f.keyring->audit_hmac_key()), "checkpoint key");
  audit::VerifyOptions options;
  options.checkpoint_key = &checkpoint_key;
  for (auto _ : state) {
    auto report = must(audit::verify_files({path}, options), "verify");
    if (!report.ok()) state.SkipWithError("intact log failed to verify");
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_AuditVerify)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->Iterations(1);

// The rate limiter runs on every request (issue 6). Limits high enough that nothing is refused:
// this is the cost of an allowed request.
api::RateLimitSettings generous_limits() {
  api::RateLimitSettings s;
  s.read = {{1e6, 1e9}, {1e6, 1e9}};
  return s;
}

// One client (a certificate and an address) reading: two shard locks, two lookups.
void BM_RateLimitAcquire(benchmark::State& state) {
  static api::RateLimiter limiter(generous_limits());
  // Each thread its own certificate, all from one address (every unit on a box shares it).
  const std::string identity = std::string(64, 'a') + std::to_string(state.thread_index());
  for (auto _ : state) {
    auto d = limiter.acquire(api::RateClass::read, identity, "10.1.2.3");
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RateLimitAcquire)->Threads(1)->Threads(2)->Threads(8)->UseRealTime();

// A flood of new addresses (one request each) with the address table at its cap (16384
// buckets). Arg 0: the default read limits, where a bucket used once refills within
// milliseconds and is dropped as idle. Arg 1: the worst case, no bucket ever refills, so each
// new address scans its shard (16384 / 64) and evicts the bucket closest to full.
void BM_RateLimitFloodAtCap(benchmark::State& state) {
  api::RateLimitSettings s;
  s.read.identity = {1e6, 1e9};
  if (state.range(0) == 1) s.read.address = {1e-3, 1e9};
  api::RateLimiter limiter(s);
  std::vector<std::string> addresses;
  for (int i = 0; i < 200000; ++i) {
    addresses.push_back("10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) + "." +
                        std::to_string(i & 255));
  }
  for (std::size_t i = 0; i < 20000; ++i) (void)limiter.acquire(api::RateClass::read, "cert", addresses[i]);
  std::size_t i = 20000;
  for (auto _ : state) {
    auto d = limiter.acquire(api::RateClass::read, "cert", addresses[i]);
    benchmark::DoNotOptimize(d);
    if (++i == addresses.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["buckets"] = static_cast<double>(limiter.size());
}
BENCHMARK(BM_RateLimitFloodAtCap)->Arg(0)->Arg(1);

// A login's lockout check for an identity with no failures (the common case).
void BM_LockoutCheck(benchmark::State& state) {
  auth::LoginLockout lockout(auth::LockoutSettings{});
  const std::string key = "cert:" + std::string(64, 'f');
  for (auto _ : state) {
    Status st = lockout.check(key);
    benchmark::DoNotOptimize(st);
  }
}
BENCHMARK(BM_LockoutCheck);

// --- cert login's X.509 work (P-256 CA and leaf, as bench/run.sh uses) ---

struct LoginPki {
  coffer::testing::TestCert ca, leaf;
  std::optional<crypto::TrustAnchors> anchors;
};
const LoginPki& login_pki() {
  static const LoginPki pki = [] {
    LoginPki p;
    coffer::testing::CertSpec ca_spec;
    ca_spec.cn = "bench CA";
    ca_spec.ca = true;
    p.ca = coffer::testing::make_cert(ca_spec);
    coffer::testing::CertSpec leaf_spec;
    leaf_spec.cn = "web01";
    leaf_spec.dns = {"web01.internal"};
    leaf_spec.serial = 2;
    p.leaf = coffer::testing::make_cert(leaf_spec, &p.ca);
    auto anchors = crypto::TrustAnchors::from_pem(p.ca.pem);
    if (!anchors.ok()) std::abort();
    p.anchors = std::move(anchors).value();
    return p;
  }();
  return pki;
}

// What a cert login reads from the presented leaf (CN, SANs, serial, fingerprint, ...).
void BM_CertParse(benchmark::State& state) {
  const LoginPki& pki = login_pki();
  for (auto _ : state) {
    auto info = crypto::parse_certificate_der(pki.leaf.der);
    benchmark::DoNotOptimize(info);
  }
}
BENCHMARK(BM_CertParse);

// The chain check against a role's trusted CA (parses the leaf again, then X509_verify_cert).
void BM_CertVerify(benchmark::State& state) {
  const LoginPki& pki = login_pki();
  const std::vector<std::vector<std::uint8_t>> none;
  for (auto _ : state) {
    Status st = pki.anchors->verify(pki.leaf.der, none);
    if (!st.ok()) state.SkipWithError(st.message().c_str());
    benchmark::DoNotOptimize(st);
  }
}
BENCHMARK(BM_CertVerify);

}  // namespace

BENCHMARK_MAIN();
