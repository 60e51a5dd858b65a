// keys::Keyring over a real sqlite file with the fault-injecting FakeProtector: initialise,
// load, fail closed, rotate, sub-keys, and the encryption counter (persisted ahead of use).
#include "keys/keyring.h"

#include <thread>

#include "crypto/mac.h"
#include "storage/sqlite_storage.h"
#include "tests/support/fake_protector.h"
#include "tests/unit/storage/storage_test_util.h"

namespace coffer::keys {
namespace {

using coffer::testing::RawDb;
using coffer::testing::TempDir;
using ::testing::HasSubstr;

class KeyringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = storage::SqliteStorage::open(path(), true);
    ASSERT_OK(db);
    db_ = std::move(db).value();
    ASSERT_OK(protector_.create_master_key());
  }
  std::string path() const { return dir_.file("coffer.db"); }
  std::unique_ptr<Keyring> must_load(KeyringOptions options = {}) {
    auto ring = Keyring::load(*db_, protector_, options);
    EXPECT_OK(ring);
    return ring.ok() ? std::move(ring).value() : nullptr;
  }

  TempDir dir_;
  coffer::testing::FakeProtector protector_;
  std::unique_ptr<storage::SqliteStorage> db_;
};

TEST_F(KeyringTest, LoadBeforeInitIsFailedPrecondition) {
  auto ring = Keyring::load(*db_, protector_);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.status().code(), Code::failed_precondition);
  EXPECT_EQ(ring.status().message(), "coffer is not initialised: run cofferctl init");
}

TEST_F(KeyringTest, InitStoresWrappedDekAndDeriveRootOnly) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  auto rows = db_->load_keyring();
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].purpose, "dek");
  EXPECT_EQ((*rows)[1].purpose, "derive");
  auto ring = must_load();
  ASSERT_NE(ring, nullptr);
  const auto& dek = **ring->dek(1);
  for (const auto& row : *rows) {
    EXPECT_EQ(row.version, 1u);
    EXPECT_EQ(row.mechanism, "FAKE_AES_GCM");
    EXPECT_EQ(row.master_key_id, "fake-mk-1");
    EXPECT_EQ(row.encryptions, 0u);
    EXPECT_GT(row.created_at, 0);
    // The stored blob is the wrapped key, not the key.
    const auto key = dek.view(crypto::reveal());
    EXPECT_EQ(std::search(row.wrapped.begin(), row.wrapped.end(), key.begin(), key.end()),
              row.wrapped.end());
  }
}

TEST_F(KeyringTest, InitTwiceIsAlreadyExistsAndChangesNothing) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  const auto before = *db_->load_keyring();
  EXPECT_CODE(Keyring::initialize(*db_, protector_), Code::already_exists);
  const auto after = *db_->load_keyring();
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].wrapped, before[i].wrapped);
}

TEST_F(KeyringTest, InitWithAFailingProtectorStoresNothing) {
  protector_.fail_next(1, Code::unavailable);
  auto status = Keyring::initialize(*db_, protector_);
  EXPECT_EQ(status.code(), Code::unavailable);
  EXPECT_THAT(status.message(), HasSubstr("DEK v1 could not be wrapped"));
  EXPECT_TRUE(db_->load_keyring()->empty());
  EXPECT_OK(Keyring::initialize(*db_, protector_));  // and a retry works
}

TEST_F(KeyringTest, LoadHoldsLockedKeysAndDerivesDistinctStableSubkeys) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  auto a = must_load();
  auto b = must_load();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->current_dek_version(), 1u);
  EXPECT_EQ(a->dek_versions(), std::vector<std::uint32_t>{1});
  auto dek = a->dek(1);
  ASSERT_OK(dek);
  EXPECT_EQ((*dek)->size(), 32u);
  EXPECT_TRUE((*dek)->locked());
  EXPECT_EQ(a->dek(2).status().code(), Code::not_found);

  EXPECT_EQ(a->token_hash_key().size(), 32u);
  EXPECT_EQ(a->audit_hmac_key().size(), 32u);
  EXPECT_TRUE(a->token_hash_key().locked());
  EXPECT_FALSE(a->token_hash_key().equals(a->audit_hmac_key()));
  EXPECT_FALSE(a->token_hash_key().equals(**dek));
  EXPECT_FALSE(a->audit_hmac_key().equals(**dek));
  // Stable across loads (a restart must verify yesterday's token hashes).
  EXPECT_TRUE(a->token_hash_key().equals(b->token_hash_key()));
  EXPECT_TRUE(a->audit_hmac_key().equals(b->audit_hmac_key()));
  EXPECT_TRUE((*dek)->equals(**b->dek(1)));
}

TEST_F(KeyringTest, SubkeysAreTheDocumentedHkdfOfTheDeriveRoot) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  auto ring = must_load();
  ASSERT_NE(ring, nullptr);
  storage::KeyringRow derive;
  auto rows = db_->load_keyring();
  ASSERT_OK(rows);
  for (auto& row : *rows) {
    if (row.purpose == "derive") derive = row;
  }
  auto root = protector_.unwrap(WrappedKey{derive.mechanism, derive.master_key_id, derive.wrapped});
  ASSERT_OK(root);
  auto token_key = crypto::hkdf_sha256(*root, {}, "coffer token-hash v1", 32);
  auto audit_key = crypto::hkdf_sha256(*root, {}, "coffer audit-hmac v1", 32);
  ASSERT_OK(token_key);
  ASSERT_OK(audit_key);
  EXPECT_TRUE(ring->token_hash_key().equals(*token_key));
  EXPECT_TRUE(ring->audit_hmac_key().equals(*audit_key));
}

TEST_F(KeyringTest, UnwrapFaultFailsTheLoadClosed) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  protector_.fail_next(1, Code::unavailable);
  auto ring = Keyring::load(*db_, protector_);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.status().code(), Code::unavailable);
  EXPECT_EQ(ring.status().message(), "keyring DEK v1 could not be unwrapped: injected fault");
  EXPECT_NE(must_load(), nullptr);  // the fault was transient
}

TEST_F(KeyringTest, ATamperedDeriveRowFailsTheLoad) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  RawDb(path()).exec("UPDATE keyring SET wrapped = x'00' || substr(wrapped, 2) WHERE purpose = 'derive'");
  auto ring = Keyring::load(*db_, protector_);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.status().code(), Code::data_loss);
  EXPECT_THAT(ring.status().message(), HasSubstr("keyring derive v1 could not be unwrapped"));
}

TEST_F(KeyringTest, AnotherMasterKeyCannotLoadTheKeyring) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  coffer::testing::FakeProtector other;
  EXPECT_FALSE(Keyring::load(*db_, other).ok());  // no MK at all
  ASSERT_OK(other.create_master_key());
  auto ring = Keyring::load(*db_, other);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.status().code(), Code::data_loss);
}

TEST_F(KeyringTest, IncompleteOrUnknownRowsAreRefused) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  RawDb raw(path());
  raw.exec("DELETE FROM keyring WHERE purpose = 'derive'");
  EXPECT_CODE(Keyring::load(*db_, protector_), Code::data_loss);
  raw.exec("INSERT INTO keyring SELECT 'transit', version, mechanism, master_key_id, wrapped, "
           "created_at, 0 FROM keyring WHERE purpose = 'dek'");
  EXPECT_CODE(Keyring::load(*db_, protector_), Code::data_loss);
}

TEST_F(KeyringTest, RotateAddsACurrentDekAndKeepsTheOldOne) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  auto ring = must_load();
  ASSERT_NE(ring, nullptr);
  const crypto::SecretBytes* v1 = *ring->dek(1);
  ASSERT_OK(ring->rotate(*db_, protector_));
  EXPECT_EQ(ring->current_dek_version(), 2u);
  EXPECT_EQ(*ring->dek(1), v1);  // same object: pointers stay valid across rotation
  EXPECT_FALSE((*ring->dek(2))->equals(*v1));
  auto key = ring->acquire_encryption_key(*db_);
  ASSERT_OK(key);
  EXPECT_EQ(key->version, 2u);

  auto reloaded = must_load();
  EXPECT_EQ(reloaded->current_dek_version(), 2u);
  EXPECT_EQ(reloaded->dek_versions(), (std::vector<std::uint32_t>{1, 2}));
  EXPECT_TRUE((*reloaded->dek(2))->equals(**ring->dek(2)));
  // Rotation never touches the derive root: token hashes survive it.
  EXPECT_TRUE(reloaded->token_hash_key().equals(ring->token_hash_key()));
}

TEST_F(KeyringTest, RotateOnAStaleKeyringIsAlreadyExists) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  auto a = must_load();
  auto b = must_load();
  ASSERT_OK(a->rotate(*db_, protector_));
  EXPECT_CODE(b->rotate(*db_, protector_), Code::already_exists);
  EXPECT_EQ(b->current_dek_version(), 1u);
}

TEST_F(KeyringTest, RotateWithAFailingProtectorChangesNothing) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  auto ring = must_load();
  protector_.fail_next(1, Code::unavailable);
  EXPECT_CODE(ring->rotate(*db_, protector_), Code::unavailable);
  EXPECT_EQ(ring->current_dek_version(), 1u);
  EXPECT_EQ(db_->load_keyring()->size(), 2u);
}

TEST_F(KeyringTest, AfterLoadKeyUseMakesNoDeviceCalls) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  auto ring = must_load();
  const auto before = protector_.device_operations();
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(ring->acquire_encryption_key(*db_));
    ASSERT_OK(ring->dek(1));
  }
  EXPECT_EQ(protector_.device_operations(), before);
}

TEST_F(KeyringTest, EncryptionsArePersistedAheadInBlocks) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  RawDb raw(path());
  const std::string count_sql = "SELECT encryptions FROM keyring WHERE purpose = 'dek'";
  {
    auto ring = must_load({.dek_encryption_limit = 1000, .count_reservation = 4});
    ASSERT_OK(ring->acquire_encryption_key(*db_));
    EXPECT_EQ(raw.text(count_sql), "4");  // reserved before the first use
    for (int i = 0; i < 4; ++i) ASSERT_OK(ring->acquire_encryption_key(*db_));
    EXPECT_EQ(ring->encryptions(1), 5u);
    EXPECT_EQ(raw.text(count_sql), "8");
  }
  // A restart (or crash) resumes from the persisted figure: it may over-count, never under.
  auto ring = must_load({.dek_encryption_limit = 10, .count_reservation = 4});
  EXPECT_EQ(ring->encryptions(1), 8u);
  EXPECT_EQ(ring->encryptions_remaining(), 2u);
  ASSERT_OK(ring->acquire_encryption_key(*db_));
  ASSERT_OK(ring->acquire_encryption_key(*db_));
  EXPECT_EQ(raw.text(count_sql), "10");  // the last block is capped at the limit
  auto refused = ring->acquire_encryption_key(*db_);
  EXPECT_EQ(refused.status().code(), Code::resource_exhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("DEK v1"));
  EXPECT_EQ(ring->encryptions_remaining(), 0u);
  EXPECT_EQ(ring->encryptions(1), 10u);
}

TEST_F(KeyringTest, CountingIsExactUnderConcurrency) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  auto ring = must_load({.dek_encryption_limit = 1u << 20, .count_reservation = 16});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) EXPECT_OK(ring->acquire_encryption_key(*db_));
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ring->encryptions(1), 2000u);
  EXPECT_EQ(RawDb(path()).text("SELECT encryptions FROM keyring WHERE purpose = 'dek'"), "2000");
}

TEST_F(KeyringTest, InvalidOptionsAreRefused) {
  ASSERT_OK(Keyring::initialize(*db_, protector_));
  EXPECT_CODE(Keyring::load(*db_, protector_, {.dek_encryption_limit = 0, .count_reservation = 1}),
              Code::invalid_argument);
}

}  // namespace
}  // namespace coffer::keys
