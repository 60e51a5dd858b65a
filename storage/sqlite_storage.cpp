// SqliteStorage: opening the file safely, connection settings, migrations, the statement cache
// and error translation. The Storage operations are in sqlite_storage_ops.cpp.
#include "storage/sqlite_storage.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>

#include "storage/sqlite_internal.h"
#include "storage/sqlite_schema.h"

namespace coffer::storage {
namespace {

// Long enough to ride out a checkpoint or a `cofferctl` run on the same file; short enough
// that a stuck lock turns into an error (unavailable) rather than a hung request.
constexpr int kBusyTimeoutMs = 5000;

}  // namespace

Code sqlite_code(int rc) {
  switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
      return Code::already_exists;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return Code::not_found;
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
      return Code::invalid_argument;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL:
      return Code::unavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Code::data_loss;
    case SQLITE_FULL:
    case SQLITE_TOOBIG:
    case SQLITE_NOMEM:
      return Code::resource_exhausted;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return Code::failed_precondition;
    default:
      return Code::internal;
  }
}

Result<std::unique_ptr<SqliteStorage>> SqliteStorage::open(const std::string& path,
                                                           bool create_if_missing) {
  if (path.empty()) return Error(Code::invalid_argument, "the database path is empty");
  const std::string prefix = "cannot open database " + path + ": ";
  if (create_if_missing) {
    // We create the file, not sqlite: sqlite would use 0644 & ~umask. O_EXCL + O_NOFOLLOW:
    // never truncate or adopt a file someone else placed, never follow a planted symlink.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
    } else if (errno != EEXIST) {
      const int err = errno;
      return Error(err == EACCES || err == ENOENT ? Code::failed_precondition : Code::unavailable,
                   prefix + std::strerror(err));
    }
  }
  // No SQLITE_OPEN_CREATE: a missing file is an error, never a fresh empty database.
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (rc == SQLITE_CANTOPEN_SYMLINK) message += " (the path is a symbolic link; refusing to follow it)";
    sqlite3_close_v2(db);
    return Error(sqlite_code(rc), prefix + message);
  }
  std::unique_ptr<SqliteStorage> storage(new SqliteStorage(db, path));
  for (auto step : {&SqliteStorage::configure, &SqliteStorage::migrate, &SqliteStorage::prepare_all,
                    &SqliteStorage::open_readers}) {
    const Status status = (storage.get()->*step)();
    if (!status.ok()) return Error(status.code(), prefix + status.message());
  }
  return storage;
}

SqliteStorage::~SqliteStorage() {
  for (auto& reader : readers_) {
    for (sqlite3_stmt* stmt : reader->statements) sqlite3_finalize(stmt);
    sqlite3_close_v2(reader->db);
  }
  for (sqlite3_stmt* stmt : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

Status SqliteStorage::configure() {
  // The file is untrusted input: no schema tricks, no functions called from schema objects.
  sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  // The first read: a file that is not a database fails here, before anything is written,
  // and a newer schema is refused before we so much as change its journal mode.
  COFFER_ASSIGN_OR_RETURN(const std::int64_t version, query_int("PRAGMA user_version"));
  if (version > latest_schema_version()) {
    return Error(Code::failed_precondition,
                 "its schema version " + std::to_string(version) +
                     " is newer than this coffer knows (up to " +
                     std::to_string(latest_schema_version()) +
                     "); it was written by a newer release: upgrade coffer, do not downgrade");
  }
  if (version < 0) {
    return Error(Code::data_loss, "its schema version " + std::to_string(version) + " is invalid");
  }
  COFFER_ASSIGN_OR_RETURN(const std::string mode, query_text("PRAGMA journal_mode=WAL"));
  if (mode != "wal") {
    return Error(Code::failed_precondition,
                 "cannot switch it to WAL journal mode (sqlite kept '" + mode +
                     "'; is the file on a filesystem without shared memory support?)");
  }
  return exec_raw("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;");
}

Status SqliteStorage::migrate() {
  for (const Migration& m : schema_migrations()) {
    COFFER_ASSIGN_OR_RETURN(std::int64_t current, query_int("PRAGMA user_version"));
    if (m.version <= current) continue;
    const std::string label = "migration to schema version " + std::to_string(m.version) + " (" +
                              m.description + ") failed: ";
    // BEGIN IMMEDIATE takes the write lock, then we look again: another process opening the
    // same file at the same moment may have just applied this migration.
    COFFER_RETURN_IF_ERROR(exec_raw("BEGIN IMMEDIATE"));
    Status status = [&]() -> Status {
      COFFER_ASSIGN_OR_RETURN(current, query_int("PRAGMA user_version"));
      if (m.version <= current) return Status::Ok();
      if (m.version != current + 1) {
        return Error(Code::internal, "schema version " + std::to_string(current) +
                                         " cannot be followed by " + std::to_string(m.version));
      }
      COFFER_RETURN_IF_ERROR(exec_raw(m.sql));
      return exec_raw("PRAGMA user_version = " + std::to_string(m.version));
    }();
    if (status.ok()) status = exec_raw("COMMIT");
    if (!status.ok()) {
      (void)exec_raw("ROLLBACK");
      return Error(status.code(), label + status.message());
    }
  }
  return Status::Ok();
}

namespace {

Status prepare_statements(sqlite3* db, std::vector<sqlite3_stmt*>& statements) {
  const auto& table = sql_text();
  statements.assign(table.size(), nullptr);
  for (std::size_t i = 0; i < table.size(); ++i) {
    // PERSISTENT: these live as long as the connection; sqlite allocates them accordingly.
    const int rc = sqlite3_prepare_v3(db, table[i], -1, SQLITE_PREPARE_PERSISTENT, &statements[i], nullptr);
    if (rc != SQLITE_OK) {
      return Error(Code::internal, std::string("cannot prepare statement: ") + sqlite3_errmsg(db) +
                                       " in: " + table[i]);
    }
  }
  return Status::Ok();
}

}  // namespace

Status SqliteStorage::prepare_all() { return prepare_statements(db_, statements_); }

// Read connections: opened after the writer has configured and migrated the file, with the same
// defences, and query_only so that a bug can never write through them.
Status SqliteStorage::open_readers() {
  for (std::size_t i = 0; i < kReadConnections; ++i) {
    auto reader = std::make_unique<Reader>();
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE;
    const int rc = sqlite3_open_v2(path_.c_str(), &reader->db, flags, nullptr);
    if (rc != SQLITE_OK) {
      Status st = Error(sqlite_code(rc), std::string("read connection: ") +
                                             (reader->db != nullptr ? sqlite3_errmsg(reader->db) : sqlite3_errstr(rc)));
      sqlite3_close_v2(reader->db);
      return st;
    }
    readers_.push_back(std::move(reader));
    sqlite3* db = readers_.back()->db;
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    char* message = nullptr;
    // A small page cache each: the OS page cache is shared, these are per connection.
    if (sqlite3_exec(db, "PRAGMA query_only=ON; PRAGMA cache_size=-1024;", nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message != nullptr ? message : "unknown error";
      sqlite3_free(message);
      return Error(Code::internal, "read connection: " + text);
    }
    COFFER_RETURN_IF_ERROR(prepare_statements(db, readers_.back()->statements));
  }
  return Status::Ok();
}

// Any free reader, starting from one chosen per thread so threads spread out; if all are busy,
// wait for this thread's own.
SqliteStorage::ReadLease SqliteStorage::read() {
  static std::atomic<unsigned> next_thread{0};
  thread_local const unsigned home = next_thread.fetch_add(1, std::memory_order_relaxed);
  const std::size_t n = readers_.size();
  for (std::size_t i = 0; i < n; ++i) {
    Reader& r = *readers_[(home + i) % n];
    std::unique_lock lock(r.mu, std::try_to_lock);
    if (lock.owns_lock()) return ReadLease(r, std::move(lock));
  }
  Reader& r = *readers_[home % n];
  return ReadLease(r, std::unique_lock(r.mu));
}

// --- group commit ---

// The first caller to find no leader becomes the leader: it takes the whole queue, runs it as
// one transaction on the writer, marks every entry done and wakes the waiters. A waiter whose
// entry is still queued when the leader finishes becomes the next leader.
Status SqliteStorage::grouped(const std::function<Status()>& op) {
  PendingWrite me{&op, Status::Ok(), false};
  std::unique_lock lock(group_mu_);
  group_queue_.push_back(&me);
  while (!me.done) {
    if (group_leader_active_) {
      group_cv_.wait(lock);
      continue;
    }
    group_leader_active_ = true;
    std::vector<PendingWrite*> batch;
    batch.swap(group_queue_);
    lock.unlock();
    run_batch(batch);
    lock.lock();
    for (PendingWrite* w : batch) w->done = true;
    group_leader_active_ = false;
    group_cv_.notify_all();
  }
  return me.result;
}

namespace {

// The leader runs other threads' operations: one that throws must not leave the group without a
// leader (every later writer would wait forever), so a throw becomes that caller's error.
Status run_op(const std::function<Status()>& op) {
  try {
    return op();
  } catch (const std::exception& e) {
    return Error(Code::internal, std::string("a grouped write failed: ") + e.what());
  } catch (...) {
    return Error(Code::internal, "a grouped write failed with an unknown exception");
  }
}

}  // namespace

void SqliteStorage::run_batch(const std::vector<PendingWrite*>& batch) {
  WriterLock lock(*this);
  if (batch.size() == 1) {  // nothing to share: plain autocommit, no savepoint overhead
    batch[0]->result = run_op(*batch[0]->op);
    return;
  }
  if (Status begin = Query(*this, kBegin, "begin transaction").run(); !begin.ok()) {
    for (PendingWrite* w : batch) w->result = begin;
    return;
  }
  Status aborted = Status::Ok();
  for (PendingWrite* w : batch) {
    if (!aborted.ok()) {
      w->result = aborted;
      continue;
    }
    w->result = Query(*this, kSavepoint, "savepoint").run();
    if (w->result.ok()) {
      w->result = run_op(*w->op);
      if (w->result.ok()) {
        w->result = Query(*this, kReleaseSavepoint, "release savepoint").run();
      } else if (sqlite3_get_autocommit(db_) == 0) {
        (void)Query(*this, kRollbackToSavepoint, "rollback to savepoint").run();
        (void)Query(*this, kReleaseSavepoint, "release savepoint").run();
      }
    }
    // Some errors (I/O, disk full) make sqlite roll the whole transaction back: then the
    // entries before this one were lost too.
    if (sqlite3_get_autocommit(db_) != 0) {
      aborted = Error(Code::unavailable, "a grouped write on database " + path_ +
                                             " was rolled back: " + w->result.message());
      if (w->result.ok()) w->result = aborted;
    }
  }
  if (!aborted.ok()) {
    for (PendingWrite* w : batch) {
      if (w->result.ok()) w->result = aborted;
    }
    return;
  }
  if (Status commit = Query(*this, kCommit, "commit").run(); !commit.ok()) {
    (void)Query(*this, kRollback, "rollback").run();
    for (PendingWrite* w : batch) {
      if (w->result.ok()) w->result = commit;
    }
  }
}

Status SqliteStorage::exec_raw(const std::string& sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string text = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  return Error(sqlite_code(rc), text);
}

Result<std::string> SqliteStorage::query_text(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW) {
    Status status = Error(sqlite_code(rc), sqlite3_errmsg(db_));
    sqlite3_finalize(stmt);
    return status;
  }
  const unsigned char* text = sqlite3_column_text(stmt, 0);
  std::string out = text != nullptr ? reinterpret_cast<const char*>(text) : "";
  sqlite3_finalize(stmt);
  return out;
}

Result<std::int64_t> SqliteStorage::query_int(const char* sql) {
  COFFER_ASSIGN_OR_RETURN(const std::string text, query_text(sql));
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Error(Code::internal, std::string(sql) + " returned '" + text + "', not an integer");
  }
  return value;
}

Status SqliteStorage::error(sqlite3* db, int rc, std::string_view what) const {
  return Error(sqlite_code(rc), std::string(what) + " failed on database " + path_ + ": " +
                                    sqlite3_errmsg(db));
}

Result<SqliteStorage::Settings> SqliteStorage::settings() {
  WriterLock lock(*this);
  Settings s;
  COFFER_ASSIGN_OR_RETURN(s.journal_mode, query_text("PRAGMA journal_mode"));
  COFFER_ASSIGN_OR_RETURN(s.synchronous, query_int("PRAGMA synchronous"));
  COFFER_ASSIGN_OR_RETURN(const std::int64_t fk, query_int("PRAGMA foreign_keys"));
  COFFER_ASSIGN_OR_RETURN(const std::int64_t sd, query_int("PRAGMA secure_delete"));
  COFFER_ASSIGN_OR_RETURN(s.busy_timeout_ms, query_int("PRAGMA busy_timeout"));
  COFFER_ASSIGN_OR_RETURN(s.user_version, query_int("PRAGMA user_version"));
  s.foreign_keys = fk != 0;
  s.secure_delete = sd != 0;
  return s;
}

Status SqliteStorage::checkpoint() {
  WriterLock lock(*this);
  auto busy = query_int("PRAGMA wal_checkpoint(TRUNCATE)");
  if (!busy.ok()) return busy.status().with_context("checkpoint of " + path_);
  if (*busy != 0) {
    return Error(Code::unavailable, "checkpoint of " + path_ + " could not complete: readers are active");
  }
  return Status::Ok();
}

// --- Query and Transaction ---

SqliteStorage::Query::Query(SqliteStorage& owner, Reader* reader, int sql, std::string_view what)
    : owner_(owner),
      db_(reader != nullptr ? reader->db : owner.db_),
      stmt_((reader != nullptr ? reader->statements : owner.statements_)[static_cast<std::size_t>(sql)]),
      what_(what) {
  // On the writer, under mu_ (WriterLock), which moves the token generation when it is released.
  if (reader == nullptr && sql_changes_tokens(sql)) owner.tokens_changed_ = true;
}

SqliteStorage::Query::Query(SqliteStorage& owner, int sql, std::string_view what)
    : Query(owner, static_cast<Reader*>(nullptr), sql, what) {}

SqliteStorage::Query::Query(SqliteStorage& owner, Reader& reader, int sql, std::string_view what)
    : Query(owner, &reader, sql, what) {}

SqliteStorage::Query::~Query() {
  // Reset ends the statement's implicit read transaction; a forgotten reset would pin the WAL.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

SqliteStorage::Query& SqliteStorage::Query::text(int index, const std::string& value) {
  // TRANSIENT: sqlite copies, so a bound value may be a temporary. The copies are small.
  note(sqlite3_bind_text64(stmt_, index, value.c_str(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

SqliteStorage::Query& SqliteStorage::Query::blob(int index, const std::vector<std::uint8_t>& value) {
  // An empty vector may have a null data(), which sqlite would bind as NULL: bind x'' instead.
  if (value.empty()) {
    note(sqlite3_bind_zeroblob(stmt_, index, 0));
  } else {
    note(sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT));
  }
  return *this;
}

SqliteStorage::Query& SqliteStorage::Query::integer(int index, std::int64_t value) {
  note(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

SqliteStorage::Query& SqliteStorage::Query::null(int index) {
  note(sqlite3_bind_null(stmt_, index));
  return *this;
}

void SqliteStorage::Query::note(int rc) {
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

Result<bool> SqliteStorage::Query::step() {
  if (bind_rc_ != SQLITE_OK) return owner_.error(db_, bind_rc_, what_);
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return owner_.error(db_, rc, what_);
}

Status SqliteStorage::Query::run() {
  COFFER_ASSIGN_OR_RETURN(const bool row, step());
  (void)row;  // writes return no rows; a RETURNING clause is not used here
  return Status::Ok();
}

std::int64_t SqliteStorage::Query::changes() const { return sqlite3_changes64(db_); }

bool SqliteStorage::Query::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::string SqliteStorage::Query::text_at(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_, column);
  const int n = sqlite3_column_bytes(stmt_, column);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
}

std::vector<std::uint8_t> SqliteStorage::Query::blob_at(int column) const {
  const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, column));
  const int n = sqlite3_column_bytes(stmt_, column);
  return p == nullptr ? std::vector<std::uint8_t>() : std::vector<std::uint8_t>(p, p + n);
}

std::int64_t SqliteStorage::Query::integer_at(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

SqliteStorage::Transaction::~Transaction() {
  if (active_) (void)Query(owner_, kRollback, "rollback").run();
}

Status SqliteStorage::Transaction::begin() {
  COFFER_RETURN_IF_ERROR(Query(owner_, kBegin, "begin transaction").run());
  active_ = true;
  return Status::Ok();
}

Status SqliteStorage::Transaction::commit() {
  COFFER_RETURN_IF_ERROR(Query(owner_, kCommit, "commit").run());
  active_ = false;
  return Status::Ok();
}

}  // namespace coffer::storage
