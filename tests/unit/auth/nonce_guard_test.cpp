// NonceGuard against a real SqliteStorage with a test clock: the X-Coffer-Nonce format, the
// timestamp window (both ways, inclusive), replays per scope, concurrent duplicates, the sweep.
#include "auth/nonce_guard.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/unit/auth/sqlite_fixture.h"

namespace coffer::auth {
namespace {

constexpr std::int64_t kNow = 1'700'000'000;
const std::string kRandom = "Zk3q9V_2mB-xR7pT1sLw";  // 20 characters of the allowed set

std::string nonce(std::int64_t ts, const std::string& random = kRandom) { return std::to_string(ts) + "." + random; }

class NonceGuardTest : public coffer::testing::SqliteTest {
 protected:
  void SetUp() override {
    SqliteTest::SetUp();
    guard_ = std::make_unique<NonceGuard>(*storage_, 300, [this] { return now_.load(); });
  }
  NonceOutcome outcome(std::string_view value, std::string_view scope = "cert:aa") {
    auto r = guard_->check_and_record(scope, value);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->outcome : NonceOutcome::kMalformed;
  }

  std::atomic<std::int64_t> now_{kNow};
  std::unique_ptr<NonceGuard> guard_;
};

TEST_F(NonceGuardTest, FreshThenReplayedPerScope) {
  EXPECT_EQ(outcome(nonce(kNow)), NonceOutcome::kAccepted);
  auto again = guard_->check_and_record("cert:aa", nonce(kNow));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->outcome, NonceOutcome::kReplayed);
  EXPECT_EQ(again->message, "request nonce has already been used");
  EXPECT_EQ(outcome(nonce(kNow), "cert:bb"), NonceOutcome::kAccepted) << "another client certificate";
  // The random part is what counts: another timestamp does not make it new.
  EXPECT_EQ(outcome(nonce(kNow + 5)), NonceOutcome::kReplayed);
  EXPECT_EQ(outcome(nonce(kNow, kRandom + "x")), NonceOutcome::kAccepted);
}

TEST_F(NonceGuardTest, WindowIsInclusiveBothWays) {
  EXPECT_EQ(outcome(nonce(kNow - 300, std::string(16, 'a'))), NonceOutcome::kAccepted);
  EXPECT_EQ(outcome(nonce(kNow + 300, std::string(16, 'b'))), NonceOutcome::kAccepted);
  auto behind = guard_->check_and_record("cert:aa", nonce(kNow - 301, std::string(16, 'c')));
  ASSERT_TRUE(behind.ok());
  EXPECT_EQ(behind->outcome, NonceOutcome::kOutsideWindow);
  EXPECT_NE(behind->message.find("301s behind"), std::string::npos) << behind->message;
  EXPECT_NE(behind->message.find("300s"), std::string::npos) << behind->message;
  auto ahead = guard_->check_and_record("cert:aa", nonce(kNow + 3600, std::string(16, 'd')));
  ASSERT_TRUE(ahead.ok());
  EXPECT_EQ(ahead->outcome, NonceOutcome::kOutsideWindow);
  EXPECT_NE(ahead->message.find("3600s ahead"), std::string::npos) << ahead->message;
  // A refused nonce is not recorded: with a good timestamp it is still fresh.
  EXPECT_EQ(outcome(nonce(kNow, std::string(16, 'c'))), NonceOutcome::kAccepted);
}

TEST_F(NonceGuardTest, MalformedNoncesAreRefusedWithoutQuotingThem) {
  const std::string ok16(16, 'x');
  for (const std::string& bad : {std::string(""), std::string("."), nonce(kNow, ""), ok16,
                                 "." + ok16, std::to_string(kNow) + ok16,            // no dot
                                 nonce(kNow, std::string(15, 'x')),                   // too short
                                 nonce(kNow, std::string(65, 'x')),                   // too long
                                 nonce(kNow, std::string(15, 'x') + "!"),             // bad character
                                 nonce(kNow, std::string(15, 'x') + "."),             // a second dot
                                 nonce(kNow, std::string(15, 'x') + " "),
                                 "-" + nonce(kNow), "+" + nonce(kNow), "0x10." + ok16, "12a." + ok16,
                                 "1700000000000000000000." + ok16}) {
    auto r = guard_->check_and_record("cert:aa", bad);
    ASSERT_TRUE(r.ok()) << bad;
    EXPECT_EQ(r->outcome, NonceOutcome::kMalformed) << bad;
    EXPECT_NE(r->message.find("malformed X-Coffer-Nonce"), std::string::npos);
    if (bad.size() > 3) {
      EXPECT_EQ(r->message.find(bad), std::string::npos) << "the message must not echo the nonce";
    }
  }
  EXPECT_EQ(outcome(nonce(kNow, std::string(64, 'Z'))), NonceOutcome::kAccepted);
  EXPECT_EQ(outcome(nonce(kNow, "aZ09_-aZ09_-aZ09")), NonceOutcome::kAccepted);
}

TEST_F(NonceGuardTest, ConcurrentDuplicatesExactlyOneAccepted) {
  constexpr int kThreads = 16;
  std::atomic<int> go{0};
  std::atomic<int> accepted{0};
  std::atomic<int> replayed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      go.fetch_add(1);
      while (go.load() < kThreads) std::this_thread::yield();
      auto r = guard_->check_and_record("cert:aa", nonce(kNow));
      if (r.ok() && r->outcome == NonceOutcome::kAccepted) accepted.fetch_add(1);
      if (r.ok() && r->outcome == NonceOutcome::kReplayed) replayed.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 1);
  EXPECT_EQ(replayed.load(), kThreads - 1);
}

TEST_F(NonceGuardTest, SweepForgetsOnlyWhatLeftTheWindow) {
  EXPECT_EQ(outcome(nonce(kNow - 100, std::string(16, 'a'))), NonceOutcome::kAccepted);  // kept until kNow + 200
  EXPECT_EQ(outcome(nonce(kNow + 100, std::string(16, 'b'))), NonceOutcome::kAccepted);  // kept until kNow + 400
  now_ = kNow + 200;
  auto swept = guard_->sweep();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 1u);
  // The second is still remembered while its timestamp is within the window.
  EXPECT_EQ(outcome(nonce(kNow + 100, std::string(16, 'b'))), NonceOutcome::kReplayed);
  now_ = kNow + 400;
  EXPECT_EQ(*guard_->sweep(), 1u);
}

}  // namespace
}  // namespace coffer::auth
