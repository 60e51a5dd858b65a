// Helpers for the storage tests: a temp dir per test, Status matchers, and raw sqlite access
// to the database file (to inspect pragmas and to tamper with rows as an attacker would).
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/status.h"

namespace coffer::testing {

inline std::string status_of(const Status& s) { return s.to_string(); }
template <typename T>
std::string status_of(const Result<T>& r) { return r.status().to_string(); }
inline Code code_of(const Status& s) { return s.code(); }
template <typename T>
Code code_of(const Result<T>& r) { return r.status().code(); }

#define EXPECT_OK(expr)                                               \
  do {                                                                \
    const auto& coffer_e_ = (expr);                                   \
    EXPECT_TRUE(coffer_e_.ok()) << ::coffer::testing::status_of(coffer_e_); \
  } while (0)
#define ASSERT_OK(expr)                                               \
  do {                                                                \
    const auto& coffer_e_ = (expr);                                   \
    ASSERT_TRUE(coffer_e_.ok()) << ::coffer::testing::status_of(coffer_e_); \
  } while (0)
#define EXPECT_CODE(expr, expected)                                   \
  do {                                                                \
    const auto& coffer_e_ = (expr);                                   \
    EXPECT_EQ(::coffer::testing::code_of(coffer_e_), (expected))      \
        << ::coffer::testing::status_of(coffer_e_);                   \
  } while (0)

// A fresh directory under $TMPDIR, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "coffer-storage-XXXXXX").string();
    char* made = mkdtemp(tmpl.data());
    if (made == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A second, independent connection to the database file: what an attacker (or an operator
// with the sqlite3 shell) could do to it. Opened without WAL pragmas of its own.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "raw open of " << path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (err ? err : "?");
    }
    sqlite3_free(err);
  }
  // First column of the first row as text ("" when there is none).
  std::string text(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return out;
  }
  std::vector<std::uint8_t> blob(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    std::vector<std::uint8_t> out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
      const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(st, 0));
      out.assign(p, p + sqlite3_column_bytes(st, 0));
    }
    sqlite3_finalize(st);
    return out;
  }
  void set_blob(const std::string& sql, const std::vector<std::uint8_t>& value) {
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
    sqlite3_bind_blob(st, 1, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(st), SQLITE_DONE) << sqlite3_errmsg(db_);
    sqlite3_finalize(st);
  }

 private:
  sqlite3* db_ = nullptr;
};

inline std::vector<std::uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline bool contains(const std::vector<std::uint8_t>& haystack, const std::string& needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) != haystack.end();
}

}  // namespace coffer::testing
