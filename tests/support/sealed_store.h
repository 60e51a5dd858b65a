// SealedStoreTest: a real sqlite file in the test's own temp dir, a keyring initialised under the
// software protector, and the AEAD barrier over them — the base that tests of the parts above
// storage/ (engines, the router) build their own stores on. Header-only: it uses the storage
// test helpers (TempDir, ASSERT_OK) and links with coffer_test_support.
#pragma once

#include <memory>
#include <string>

#include "keys/keyring.h"
#include "storage/barrier.h"
#include "storage/sqlite_storage.h"
#include "tests/support/fake_protector.h"
#include "tests/unit/storage/storage_test_util.h"

namespace coffer::testing {

class SealedStoreTest : public ::testing::Test {
 protected:
  // A derived SetUp calls this first and returns if HasFatalFailure().
  void SetUp() override {
    auto db = storage::SqliteStorage::open(db_path(), true);
    ASSERT_OK(db);
    db_ = std::move(db).value();
    ASSERT_OK(protector_.create_master_key());
    ASSERT_OK(keys::Keyring::initialize(*db_, protector_));
    auto ring = keys::Keyring::load(*db_, protector_);
    ASSERT_OK(ring);
    keyring_ = std::move(ring).value();
    barrier_ = std::make_unique<storage::Barrier>(*db_, *keyring_);
  }

  std::string db_path() const { return dir_.file("coffer.db"); }

  TempDir dir_;
  FakeProtector protector_;
  std::unique_ptr<storage::SqliteStorage> db_;
  std::unique_ptr<keys::Keyring> keyring_;
  std::unique_ptr<storage::Barrier> barrier_;
};

}  // namespace coffer::testing
