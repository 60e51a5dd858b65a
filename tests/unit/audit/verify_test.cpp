// The verifier against tampered copies of a real log: each kind of tampering is found and named
// at the right record; an intact log (also across files) passes.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <algorithm>
#include <filesystem>

#include "tests/unit/audit/audit_test_util.h"

namespace coffer::audit {
namespace {

using namespace coffer::audit::testing;

class AuditVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = storage::SqliteStorage::open(dir_.file("coffer.db"), true);
    ASSERT_OK(s);
    db_ = std::move(s).value();
    AuditOptions o;
    o.checkpoint_every = 4;
    auto sink = FileSink::open(path());
    ASSERT_OK(sink);
    auto log = AuditLog::open(std::move(sink).value(), key_, db_.get(), o);
    ASSERT_OK(log);
    for (int i = 0; i < 10; ++i) ASSERT_OK((*log)->log(request_entry("secret/app/" + std::to_string(i), "s3cr3t")));
    ASSERT_OK((*log)->close());
    lines_ = lines_of(read_all(path()));
    // 1 start ckpt, records 2-5, ckpt 6, 7-10, ckpt 11, 12-13, shutdown ckpt 14
    ASSERT_EQ(lines_.size(), 14u);
  }
  std::string path() const { return dir_.file("audit.log"); }
  VerifyReport verify(const crypto::SecretBytes* key = nullptr) {
    auto ck = derive_checkpoint_key(key != nullptr ? *key : key_);
    auto head = db_->get_meta(kHeadMetaKey);
    VerifyOptions o;
    o.checkpoint_key = &*ck;
    o.db_head = *decode_head(**head);
    auto r = verify_files({path()}, o);
    EXPECT_OK(r);
    return *r;
  }
  std::uint64_t offset_of(std::size_t index) const {
    std::uint64_t off = 0;
    for (std::size_t i = 0; i < index; ++i) off += lines_[i].size() + 1;
    return off;
  }
  void expect_failure(const std::string& problem_prefix, std::uint64_t seq, std::uint64_t offset) {
    auto r = verify();
    ASSERT_FALSE(r.ok()) << "tampering not detected";
    EXPECT_EQ(r.failure->problem.rfind(problem_prefix, 0), 0u) << r.failure->problem;
    EXPECT_EQ(r.failure->seq, seq) << r.failure->problem;
    EXPECT_EQ(r.failure->offset, offset) << r.failure->problem;
  }

  TempDir dir_;
  std::unique_ptr<storage::SqliteStorage> db_;
  crypto::SecretBytes key_ = test_key();
  std::vector<std::string> lines_;
};

TEST_F(AuditVerifyTest, IntactLogPasses) {
  auto r = verify();
  EXPECT_TRUE(r.ok()) << r.failure->problem;
  EXPECT_EQ(r.records, 14u);
  EXPECT_EQ(r.checkpoints, 4u);
  EXPECT_TRUE(r.warnings.empty());
}

TEST_F(AuditVerifyTest, OneByteEditedIsFoundAtThatRecord) {
  auto pos = lines_[6].find("secret/app/");
  ASSERT_NE(pos, std::string::npos);
  lines_[6][pos] = 'S';  // record seq 7
  write_all(path(), join_lines(lines_));
  expect_failure("edited", 7, offset_of(6));
}

TEST_F(AuditVerifyTest, DeletedRecordIsFound) {
  lines_.erase(lines_.begin() + 3);  // seq 4
  write_all(path(), join_lines(lines_));
  expect_failure("deleted", 5, offset_of(3));
}

TEST_F(AuditVerifyTest, SwappedRecordsAreFound) {
  std::swap(lines_[7], lines_[8]);  // seq 8 and 9
  write_all(path(), join_lines(lines_));
  expect_failure("reordered", 9, offset_of(7));
}

TEST_F(AuditVerifyTest, TruncatedTailIsFoundAgainstTheDatabaseHead) {
  lines_.resize(11);  // cut at a checkpoint boundary: only the database head can tell
  write_all(path(), join_lines(lines_));
  expect_failure("truncated", 11, offset_of(10));
}

TEST_F(AuditVerifyTest, PartialLastRecordIsFound) {
  std::string data = join_lines(lines_);
  data.resize(data.size() - 10);
  write_all(path(), data);
  expect_failure("truncated", 14, offset_of(13));
}

TEST_F(AuditVerifyTest, ForgedRecordAppendedAfterShutdownIsFound) {
  // A well-chained record (the chain itself is unkeyed): only the checkpoints can expose it.
  auto j = nlohmann::json::parse(lines_.back());
  nlohmann::json forged{{"type", "request"}, {"time", "2026-01-01T00:00:00.000000Z"},
                        {"request", {{"path", "secret/forged"}}}, {"seq", 15}, {"prev", line_hash(lines_.back())}};
  lines_.push_back(forged.dump());
  write_all(path(), join_lines(lines_));
  expect_failure("forged or appended", 15, offset_of(14));
}

TEST_F(AuditVerifyTest, EditedCheckpointIsFound) {
  auto j = nlohmann::json::parse(lines_[5]);  // seq 6, interval checkpoint
  ASSERT_EQ(j["type"], "checkpoint");
  std::string mac = j["checkpoint"]["mac"];
  mac[0] = mac[0] == 'a' ? 'b' : 'a';
  j["checkpoint"]["mac"] = mac;
  lines_[5] = j.dump();
  // Rechain everything after it, as a careful attacker would: the MAC is what catches it.
  for (std::size_t i = 6; i < lines_.size(); ++i) {
    auto k = nlohmann::json::parse(lines_[i]);
    k["prev"] = line_hash(lines_[i - 1]);
    lines_[i] = k.dump();
  }
  write_all(path(), join_lines(lines_));
  expect_failure("forged checkpoint", 6, offset_of(5));
}

TEST_F(AuditVerifyTest, WrongKeyFailsAtTheFirstCheckpoint) {
  auto other = test_key(0x07);
  auto r = verify(&other);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.failure->problem.rfind("forged checkpoint", 0), 0u);
  EXPECT_EQ(r.failure->seq, 1u);
}

// Measured verify time for 100k records (printed; not an assertion on speed).
// Behaviour at size (the cost is measured in bench/, not here): a long intact log verifies.
TEST(AuditVerifyAtSize, TwentyThousandRecordsVerify) {
  TempDir dir;
  auto key = test_key();
  {
    auto sink = FileSink::open(dir.file("big.log"));
    ASSERT_OK(sink);
    auto log = AuditLog::open(std::move(sink).value(), key, nullptr, {});
    ASSERT_OK(log);
    for (int i = 0; i < 20000; ++i) ASSERT_OK((*log)->log(request_entry("secret/app/db", "value")));
    ASSERT_OK((*log)->close());
  }
  auto ck = derive_checkpoint_key(key);
  VerifyOptions o;
  o.checkpoint_key = &*ck;
  auto r = verify_files({dir.file("big.log")}, o);
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok());
  EXPECT_GE(r->records, 20000u);
}

}  // namespace
}  // namespace coffer::audit

namespace coffer::audit {
namespace {

using namespace coffer::audit::testing;

std::vector<std::string> audit_files(const TempDir& dir) {
  std::vector<std::string> rotated;
  for (const auto& e : std::filesystem::directory_iterator(dir.file(""))) {
    const std::string name = e.path().filename().string();
    if (name.rfind("audit.log.", 0) == 0) rotated.push_back(e.path().string());
  }
  std::sort(rotated.begin(), rotated.end());  // "<path>.<UTC time>" sorts in write order
  rotated.push_back(dir.file("audit.log"));
  return rotated;
}

TEST(AuditRotation, ByTimeKeepsOneVerifiableChain) {
  TempDir dir;
  auto key = test_key();
  {
    auto sink = FileSink::open(dir.file("audit.log"), 0, /*rotate_seconds=*/1);
    ASSERT_OK(sink);
    auto log = AuditLog::open(std::move(sink).value(), key, nullptr, {});
    ASSERT_OK(log);
    for (int i = 0; i < 3; ++i) ASSERT_OK((*log)->log(request_entry("secret/a/" + std::to_string(i), "v")));
    ASSERT_EQ(audit_files(dir).size(), 1u) << "rotated before the interval";
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    for (int i = 0; i < 3; ++i) ASSERT_OK((*log)->log(request_entry("secret/b/" + std::to_string(i), "v")));
    ASSERT_OK((*log)->close());
  }
  auto files = audit_files(dir);
  ASSERT_GE(files.size(), 2u) << "no rotation after the interval";
  auto ck = derive_checkpoint_key(key);
  VerifyOptions o;
  o.checkpoint_key = &*ck;
  auto r = verify_files(files, o);
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok()) << r->failure->problem;
  EXPECT_EQ(r->first_seq, 1u);
}

TEST(AuditRotation, ChainStaysContinuousAcrossRotatedFiles) {
  TempDir dir;
  auto db = storage::SqliteStorage::open(dir.file("coffer.db"), true);
  ASSERT_OK(db);
  auto key = test_key();
  {
    auto sink = FileSink::open(dir.file("audit.log"), 4096);
    ASSERT_OK(sink);
    auto log = AuditLog::open(std::move(sink).value(), key, db->get(), {});
    ASSERT_OK(log);
    for (int i = 0; i < 40; ++i) ASSERT_OK((*log)->log(request_entry("secret/app/" + std::to_string(i), "v")));
    ASSERT_OK((*log)->close());
  }
  auto files = audit_files(dir);
  ASSERT_GE(files.size(), 3u) << "expected at least two rotations";
  auto ck = derive_checkpoint_key(key);
  VerifyOptions o;
  o.checkpoint_key = &*ck;
  o.db_head = *decode_head(**(*db)->get_meta(kHeadMetaKey));
  auto r = verify_files(files, o);
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok()) << r->failure->problem;
  EXPECT_EQ(r->first_seq, 1u);
  // Every rotated file ends with a checkpoint: on its own it is MAC-covered to its last line.
  for (std::size_t i = 0; i + 1 < files.size(); ++i) {
    auto lines = lines_of(read_all(files[i]));
    EXPECT_NE(lines.back().find("\"reason\":\"rotate\""), std::string::npos) << files[i];
  }
  // Leaving out a middle file is a deletion.
  auto missing = files;
  missing.erase(missing.begin() + 1);
  auto bad = verify_files(missing, o);
  ASSERT_OK(bad);
  ASSERT_FALSE(bad->ok());
  EXPECT_EQ(bad->failure->problem.rfind("deleted", 0), 0u) << bad->failure->problem;
}

}  // namespace
}  // namespace coffer::audit
