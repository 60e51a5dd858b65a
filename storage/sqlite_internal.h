// Internals shared by sqlite_storage.cpp and sqlite_storage_ops.cpp (not part of the API):
// the table of cached statements, the sqlite-to-Status code mapping, and the Query and
// Transaction helpers. Only these two files include it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/sqlite_storage.h"

namespace coffer::storage {

// Every statement the storage runs, prepared once per connection. Order = sql_text() order.
enum Sql : int {
  kBegin,
  kCommit,
  kRollback,
  kSavepoint,
  kReleaseSavepoint,
  kRollbackToSavepoint,
  kGetMeta,
  kPutMeta,
  kLoadKeyring,
  kInsertKeyring,
  kAddEncryptions,
  kGetSecret,
  kPutSecret,
  kDeleteSecret,
  kListSecretsFrom,
  kListSecretsRange,
  kInsertToken,
  kGetToken,
  kGetTokenByAccessor,
  kUpdateTokenExpiry,
  kCountTokenTree,
  kDeleteTokenTree,
  kCountExpiredTrees,
  kDeleteExpiredTrees,
  kPutPolicy,
  kGetPolicy,
  kDeletePolicy,
  kListPolicies,
  kPutCertRole,
  kGetCertRole,
  kDeleteCertRole,
  kListCertRoles,
  // AppRole, response wrapping, request nonces (sqlite_storage_onetime.cpp)
  kPutApproleRole,
  kGetApproleRole,
  kGetApproleRoleByRoleId,
  kDeleteApproleRole,
  kListApproleRoles,
  kInsertSecretId,
  kGetSecretId,
  kGetSecretIdByAccessor,
  kListSecretIdAccessors,
  kDeleteSecretId,
  kConsumeSecretIdUse,
  kLinkSecretIdToken,
  kCountSecretIdTokenTrees,
  kDeleteSecretIdTokenTrees,
  kDeleteExpiredSecretIds,
  kInsertWrapped,
  kGetWrapped,
  kDeleteTokenRow,
  kInsertNonce,
  kDeleteExpiredNonces,
  kSqlCount,
};

const std::array<const char*, kSqlCount>& sql_text();
// Whether the statement updates or deletes rows of the tokens table (read from its text once:
// "UPDATE tokens" or "DELETE FROM tokens"), so that token caches learn of it.
bool sql_changes_tokens(int sql);

// sqlite result code (extended codes included) -> canonical code.
Code sqlite_code(int rc);

// A read connection locked for one operation; released (unlocked) on destruction.
class SqliteStorage::ReadLease {
 public:
  ReadLease(Reader& reader, std::unique_lock<std::mutex> lock) : reader_(reader), lock_(std::move(lock)) {}
  Reader& operator*() const { return reader_; }
  Reader* get() const { return &reader_; }

 private:
  Reader& reader_;
  std::unique_lock<std::mutex> lock_;
};

// A cached statement borrowed for one use. Bind errors are remembered and reported by the
// first step(). The destructor resets the statement and clears its bindings. The caller holds
// the connection's mutex (the storage mutex for the writer, a ReadLease for a reader) for the
// Query's whole life.
class SqliteStorage::Query {
 public:
  // On the writer connection.
  Query(SqliteStorage& owner, int sql, std::string_view what);
  // On a read connection.
  Query(SqliteStorage& owner, Reader& reader, int sql, std::string_view what);
  // On the reader when not null, else on the writer.
  Query(SqliteStorage& owner, Reader* reader, int sql, std::string_view what);
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& text(int index, const std::string& value);
  Query& blob(int index, const std::vector<std::uint8_t>& value);
  Query& integer(int index, std::int64_t value);
  Query& null(int index);

  // true: a row is ready to read; false: done. Errors carry `what`, the path and sqlite's text.
  Result<bool> step();
  // Steps a statement that returns no rows.
  Status run();
  // Rows changed by the last write on this connection (cascades not included).
  std::int64_t changes() const;

  bool is_null(int column) const;
  std::string text_at(int column) const;
  std::vector<std::uint8_t> blob_at(int column) const;
  std::int64_t integer_at(int column) const;

 private:
  void note(int rc);

  SqliteStorage& owner_;
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string_view what_;
  int bind_rc_ = 0;  // SQLITE_OK
};

class SqliteStorage::Transaction {
 public:
  explicit Transaction(SqliteStorage& owner) : owner_(owner) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // BEGIN IMMEDIATE: takes the write lock up front, so a transaction that reads then writes
  // cannot fail half-way with SQLITE_BUSY_SNAPSHOT.
  Status begin();
  Status commit();

 private:
  SqliteStorage& owner_;
  bool active_ = false;
};

}  // namespace coffer::storage
