// token_churn: what a million short-lived tokens cost (issue 6: "token churn must stay cheap").
// Mints tokens through the real TokenStore on a real sqlite file (durable writes, group commit
// from several threads), lets them expire (a controllable clock), sweeps like cofferd does every
// minute, and prints the process RSS, the database size and the sweep time as it goes. Memory
// must stay flat: tokens live in sqlite, not in the process.
//
//   build/bench/token_churn [tokens=1000000] [threads=32] [sweep_every=50000]
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "auth/token_store.h"
#include "crypto/random.h"
#include "storage/sqlite_storage.h"

namespace {

using namespace coffer;

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::uintmax_t db_bytes(const std::filesystem::path& db) {
  std::uintmax_t total = 0;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(db.string() + suffix, ec);
    if (!ec) total += n;
  }
  return total;
}

[[noreturn]] void die(const std::string& what, const Status& st) {
  std::fprintf(stderr, "token_churn: %s: %s\n", what.c_str(), st.to_string().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  const long total = argc > 1 ? std::atol(argv[1]) : 1000000;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 32;
  const long sweep_every = argc > 3 ? std::atol(argv[3]) : 50000;
  if (total <= 0 || threads <= 0 || sweep_every <= 0) {
    std::fprintf(stderr, "usage: token_churn [tokens>0] [threads>0] [sweep_every>0]\n");
    return 2;
  }

  std::string templ = (std::filesystem::temp_directory_path() / "coffer-churn-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    std::perror("token_churn: mkdtemp");
    return 1;
  }
  const std::filesystem::path dir = templ;
  const std::filesystem::path db_path = dir / "coffer.db";
  int rc = 0;
  {
    auto opened = storage::SqliteStorage::open(db_path.string(), true);
    if (!opened.ok()) die("open", opened.status());
    auto storage = std::move(opened).value();
    auto key = crypto::random_key(32);
    if (!key.ok()) die("key", key.status());
    std::atomic<std::int64_t> now{1'700'000'000};
    auth::TokenStore tokens(*storage, *key, auth::TokenSettings{60, 3600}, [&] { return now.load(); });

    std::printf("%10s %10s %12s %12s %10s %12s\n", "tokens", "rss_kib", "db_kib", "swept", "sweep_ms", "mint_per_s");
    std::printf("%10d %10ld %12ju %12s %10s %12s\n", 0, rss_kib(), db_bytes(db_path) / 1024, "-", "-", "-");
    long minted = 0;
    while (minted < total) {
      const long batch = std::min(sweep_every, total - minted);
      std::atomic<long> next{0};
      std::atomic<bool> failed{false};
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&] {
          auth::TokenSpec spec;
          spec.policies = {"default", "app"};
          spec.display_name = "approle";
          spec.ttl = 30;  // short-lived
          while (next.fetch_add(1) < batch && !failed) {
            auto issued = tokens.create(spec);
            if (!issued.ok()) {
              std::fprintf(stderr, "token_churn: create: %s\n", issued.status().to_string().c_str());
              failed = true;
            }
          }
        });
      }
      for (auto& th : pool) th.join();
      if (failed) {
        rc = 1;
        break;
      }
      const double mint_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      minted += batch;
      now += 61;  // every token minted so far has expired
      const auto s0 = std::chrono::steady_clock::now();
      auto swept = tokens.sweep_expired();
      if (!swept.ok()) die("sweep", swept.status());
      const double sweep_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count();
      std::printf("%10ld %10ld %12ju %12ju %10.1f %12.0f\n", minted, rss_kib(), db_bytes(db_path) / 1024,
                  static_cast<std::uintmax_t>(*swept), sweep_ms, static_cast<double>(batch) / mint_s);
      std::fflush(stdout);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return rc;
}
