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
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "audit/chain.h"
#include "audit/sink.h"
#include "audit/verify.h"
#include "auth/policy.h"
#include "auth/token_store.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "crypto/secret_bytes.h"
#include "crypto/secret_json.h"
#include "keys/keyring.h"
#include "storage/barrier.h"
#include "storage/sqlite_storage.h"
#include "tests/support/fake_protector.h"

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

}  // namespace

BENCHMARK_MAIN();
