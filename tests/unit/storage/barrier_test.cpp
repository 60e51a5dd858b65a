// The AEAD barrier over a real sqlite file with a keyring from the FakeProtector: round trips,
// no plaintext on disk, and tampering with the file (flipped bytes, swapped or copied rows,
// edited DEK versions) is caught as data_loss without disturbing other records.
#include "storage/barrier.h"

#include "crypto/aead.h"
#include "keys/keyring.h"
#include "storage/sqlite_storage.h"
#include "tests/support/fake_protector.h"
#include "tests/unit/storage/storage_test_util.h"

namespace coffer::storage {
namespace {

using coffer::testing::contains;
using coffer::testing::file_bytes;
using coffer::testing::RawDb;
using coffer::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

crypto::SecretBytes secret(const std::string& s) { return crypto::SecretBytes::copy_of(s); }

std::string reveal_string(const crypto::SecretBytes& s) {
  return std::string(s.view(crypto::reveal()));
}

class BarrierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = SqliteStorage::open(path(), true);
    ASSERT_OK(db);
    db_ = std::move(db).value();
    ASSERT_OK(protector_.create_master_key());
    ASSERT_OK(keys::Keyring::initialize(*db_, protector_));
    load(keys::KeyringOptions{});
  }
  void load(keys::KeyringOptions options) {
    barrier_.reset();
    auto ring = keys::Keyring::load(*db_, protector_, options);
    ASSERT_OK(ring);
    keyring_ = std::move(ring).value();
    barrier_ = std::make_unique<Barrier>(*db_, *keyring_);
  }
  std::string path() const { return dir_.file("coffer.db"); }
  // Reads (mount, path) and returns its status code (ok means the plaintext came back).
  Code read_code(const std::string& mount, const std::string& p) {
    auto r = barrier_->read(mount, p);
    if (r.ok() && !r->has_value()) return Code::not_found;
    return r.status().code();
  }

  TempDir dir_;
  coffer::testing::FakeProtector protector_;
  std::unique_ptr<SqliteStorage> db_;
  std::unique_ptr<keys::Keyring> keyring_;
  std::unique_ptr<Barrier> barrier_;
};

TEST_F(BarrierTest, RoundTripOverwriteRemoveList) {
  EXPECT_FALSE(barrier_->read("secret/", "app/db")->has_value());
  ASSERT_OK(barrier_->write("secret/", "app/db", secret("pw-1")));
  ASSERT_OK(barrier_->write("secret/", "app/api", secret("")));  // empty values are values too
  auto got = barrier_->read("secret/", "app/db");
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(reveal_string(**got), "pw-1");
  EXPECT_EQ(reveal_string(**barrier_->read("secret/", "app/api")), "");

  ASSERT_OK(barrier_->write("secret/", "app/db", secret("pw-2")));
  EXPECT_EQ(reveal_string(**barrier_->read("secret/", "app/db")), "pw-2");
  EXPECT_THAT(*barrier_->list("secret/", "app/"), ElementsAre("api", "db"));
  EXPECT_TRUE(*barrier_->remove("secret/", "app/db"));
  EXPECT_FALSE(*barrier_->remove("secret/", "app/db"));
  EXPECT_FALSE(barrier_->read("secret/", "app/db")->has_value());
}

TEST_F(BarrierTest, SealedRecordHasTheDocumentedLayout) {
  ASSERT_OK(barrier_->write("secret/", "x", secret("12345")));
  auto rec = db_->get_secret("secret/", "x");
  ASSERT_OK(rec);
  const auto& s = (*rec)->sealed;
  ASSERT_EQ(s.size(), kSealedHeaderSize + crypto::kAeadOverhead + 5);
  EXPECT_EQ(std::string(s.begin(), s.begin() + 4), "CFR1");
  EXPECT_EQ(s[4], 1);
  EXPECT_EQ(s[5], 0);
  EXPECT_EQ(s[8], 1);  // DEK v1, big-endian
  EXPECT_EQ((*rec)->dek_version, 1u);
  EXPECT_GT((*rec)->updated_at, 0);
}

TEST_F(BarrierTest, EmptyMountOrPathIsRefused) {
  EXPECT_CODE(barrier_->write("", "x", secret("v")), Code::invalid_argument);
  EXPECT_CODE(barrier_->write("secret/", "", secret("v")), Code::invalid_argument);
}

TEST_F(BarrierTest, DatabaseFilesNeverContainThePlaintext) {
  const std::string canary = "coffer-plaintext-canary-9f2c71d04e";
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(barrier_->write("secret/", "canary/" + std::to_string(i), secret(canary)));
  }
  // Before the checkpoint the records live in the WAL; the path is there in clear (it is
  // metadata), which shows the search can find what is in the file.
  const auto wal = file_bytes(path() + "-wal");
  ASSERT_TRUE(contains(wal, "canary/7"));
  EXPECT_FALSE(contains(wal, canary));
  ASSERT_OK(db_->checkpoint());
  const auto main_file = file_bytes(path());
  ASSERT_TRUE(contains(main_file, "canary/7"));
  EXPECT_FALSE(contains(main_file, canary));
  EXPECT_FALSE(contains(file_bytes(path() + "-wal"), canary));
}

TEST_F(BarrierTest, EveryFlippedByteIsCaughtAndOtherSecretsStillRead) {
  ASSERT_OK(barrier_->write("secret/", "victim", secret("victim-value")));
  ASSERT_OK(barrier_->write("secret/", "bystander", secret("bystander-value")));
  RawDb raw(path());
  const std::string select = "SELECT sealed FROM secrets WHERE path = 'victim'";
  const std::string update = "UPDATE secrets SET sealed = ?1 WHERE path = 'victim'";
  const auto original = raw.blob(select);
  ASSERT_EQ(original.size(), kSealedHeaderSize + crypto::kAeadOverhead + 12);
  // Header, nonce, ciphertext and tag: no byte may change unnoticed.
  for (std::size_t i = 0; i < original.size(); ++i) {
    auto tampered = original;
    tampered[i] ^= 0x01;
    raw.set_blob(update, tampered);
    auto r = barrier_->read("secret/", "victim");
    ASSERT_FALSE(r.ok()) << "flipped byte " << i << " went unnoticed";
    EXPECT_EQ(r.status().code(), Code::data_loss) << i;
    EXPECT_THAT(r.status().message(), HasSubstr("secret/victim")) << i;
    EXPECT_THAT(r.status().message(), Not(HasSubstr("victim-value"))) << i;
  }
  EXPECT_EQ(reveal_string(**barrier_->read("secret/", "bystander")), "bystander-value");
  raw.set_blob(update, original);
  EXPECT_EQ(reveal_string(**barrier_->read("secret/", "victim")), "victim-value");
}

TEST_F(BarrierTest, TruncatedRecordIsDataLoss) {
  ASSERT_OK(barrier_->write("secret/", "v", secret("value")));
  RawDb raw(path());
  raw.exec("UPDATE secrets SET sealed = substr(sealed, 1, 20) WHERE path = 'v'");
  EXPECT_EQ(read_code("secret/", "v"), Code::data_loss);
  raw.exec("UPDATE secrets SET sealed = x'' WHERE path = 'v'");
  EXPECT_EQ(read_code("secret/", "v"), Code::data_loss);
}

TEST_F(BarrierTest, RecordsSwappedBetweenPathsBothFail) {
  ASSERT_OK(barrier_->write("secret/", "a", secret("value-a")));
  ASSERT_OK(barrier_->write("secret/", "b", secret("value-b")));
  RawDb raw(path());
  const auto a = raw.blob("SELECT sealed FROM secrets WHERE path = 'a'");
  const auto b = raw.blob("SELECT sealed FROM secrets WHERE path = 'b'");
  raw.set_blob("UPDATE secrets SET sealed = ?1 WHERE path = 'a'", b);
  raw.set_blob("UPDATE secrets SET sealed = ?1 WHERE path = 'b'", a);
  EXPECT_EQ(read_code("secret/", "a"), Code::data_loss);
  EXPECT_EQ(read_code("secret/", "b"), Code::data_loss);
}

TEST_F(BarrierTest, RecordCopiedToAnotherMountOrPathFails) {
  ASSERT_OK(barrier_->write("secret/", "app/db", secret("value")));
  RawDb raw(path());
  raw.exec("INSERT INTO secrets SELECT 'other/', path, dek_version, sealed, updated_at "
           "FROM secrets WHERE path = 'app/db'");
  raw.exec("INSERT INTO secrets SELECT mount, 'app/dc', dek_version, sealed, updated_at "
           "FROM secrets WHERE mount = 'secret/' AND path = 'app/db'");
  // Same bytes split differently between mount and path: length prefixes keep them apart.
  raw.exec("INSERT INTO secrets SELECT 'secret/app/', 'db', dek_version, sealed, updated_at "
           "FROM secrets WHERE mount = 'secret/' AND path = 'app/db'");
  EXPECT_EQ(read_code("other/", "app/db"), Code::data_loss);
  EXPECT_EQ(read_code("secret/", "app/dc"), Code::data_loss);
  EXPECT_EQ(read_code("secret/app/", "db"), Code::data_loss);
  EXPECT_EQ(read_code("secret/", "app/db"), Code::ok);
}

TEST_F(BarrierTest, EditedDekVersionFails) {
  ASSERT_OK(barrier_->write("secret/", "old", secret("sealed-with-v1")));
  ASSERT_OK(keyring_->rotate(*db_, protector_));
  ASSERT_OK(barrier_->write("secret/", "new", secret("sealed-with-v2")));
  RawDb raw(path());
  ASSERT_EQ(raw.text("SELECT dek_version FROM secrets WHERE path = 'new'"), "2");

  // Only the column: header and row disagree.
  raw.exec("UPDATE secrets SET dek_version = 1 WHERE path = 'new'");
  auto r = barrier_->read("secret/", "new");
  EXPECT_EQ(r.status().code(), Code::data_loss);
  EXPECT_THAT(r.status().message(), HasSubstr("secret/new"));
  // Column and header together: the header is associated data, and v1 is the wrong key.
  auto sealed = raw.blob("SELECT sealed FROM secrets WHERE path = 'new'");
  sealed[8] = 1;
  raw.set_blob("UPDATE secrets SET sealed = ?1 WHERE path = 'new'", sealed);
  EXPECT_EQ(read_code("secret/", "new"), Code::data_loss);
  // A version the keyring does not hold.
  raw.exec("UPDATE secrets SET dek_version = 7 WHERE path = 'old'");
  EXPECT_EQ(read_code("secret/", "old"), Code::data_loss);
  raw.exec("UPDATE secrets SET dek_version = 1 WHERE path = 'old'");
  EXPECT_EQ(read_code("secret/", "old"), Code::ok);
}

TEST_F(BarrierTest, RotationKeepsOldRecordsReadableAndSealsNewOnesWithTheNewDek) {
  ASSERT_OK(barrier_->write("secret/", "a", secret("one")));
  ASSERT_OK(keyring_->rotate(*db_, protector_));
  ASSERT_OK(barrier_->write("secret/", "b", secret("two")));
  EXPECT_EQ((*db_->get_secret("secret/", "a"))->dek_version, 1u);
  EXPECT_EQ((*db_->get_secret("secret/", "b"))->dek_version, 2u);
  load(keys::KeyringOptions{});  // a restart
  EXPECT_EQ(reveal_string(**barrier_->read("secret/", "a")), "one");
  EXPECT_EQ(reveal_string(**barrier_->read("secret/", "b")), "two");
  // Rewriting an old record moves it to the current DEK.
  ASSERT_OK(barrier_->write("secret/", "a", secret("one")));
  EXPECT_EQ((*db_->get_secret("secret/", "a"))->dek_version, 2u);
}

TEST_F(BarrierTest, WritesAreCountedAndTheLimitStopsThem) {
  load(keys::KeyringOptions{.dek_encryption_limit = 3, .count_reservation = 1});
  for (int i = 0; i < 3; ++i) ASSERT_OK(barrier_->write("secret/", "k", secret("v")));
  EXPECT_EQ(keyring_->encryptions(1), 3u);
  EXPECT_EQ(RawDb(path()).text("SELECT encryptions FROM keyring WHERE purpose = 'dek'"), "3");
  auto refused = barrier_->write("secret/", "k2", secret("v"));
  EXPECT_EQ(refused.code(), Code::resource_exhausted);
  EXPECT_THAT(refused.message(), HasSubstr("cofferctl rotate"));
  EXPECT_FALSE(db_->get_secret("secret/", "k2")->has_value());
  EXPECT_EQ(reveal_string(**barrier_->read("secret/", "k")), "v");  // reads still work
  ASSERT_OK(keyring_->rotate(*db_, protector_));
  EXPECT_OK(barrier_->write("secret/", "k2", secret("v")));
}

TEST_F(BarrierTest, TheRequestPathNeverCallsTheProtector) {
  const auto before = protector_.device_operations();
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(barrier_->write("secret/", "p" + std::to_string(i), secret("v")));
    ASSERT_OK(barrier_->read("secret/", "p" + std::to_string(i)));
  }
  protector_.set_offline(true);  // the device may vanish: serving continues
  EXPECT_OK(barrier_->write("secret/", "q", secret("v")));
  EXPECT_EQ(reveal_string(**barrier_->read("secret/", "q")), "v");
  EXPECT_EQ(protector_.device_operations(), before);
}

}  // namespace
}  // namespace coffer::storage
