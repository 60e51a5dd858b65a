// Test fixture: a real storage::SqliteStorage on a fresh file in its own temp directory, removed
// after the test. The auth tests run against the real store, never a fake.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "storage/sqlite_storage.h"

namespace coffer::testing {

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "coffer-auth-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    db_path_ = (std::filesystem::path(dir_) / "coffer.db").string();
    auto s = storage::SqliteStorage::open(db_path_, /*create_if_missing=*/true);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    storage_ = std::move(s).value();
  }
  void TearDown() override {
    storage_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Every byte sqlite has written: the database file and its WAL.
  std::string all_database_bytes() const {
    std::string out;
    for (const char* suffix : {"", "-wal", "-journal"}) {
      std::ifstream in(db_path_ + suffix, std::ios::binary);
      out.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return out;
  }

  std::string dir_;
  std::string db_path_;
  std::unique_ptr<storage::SqliteStorage> storage_;
};

}  // namespace coffer::testing
