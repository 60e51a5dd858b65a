// SqliteStorage: the Storage interface on one sqlite file, through the sqlite3 C API.
// Durability and hygiene: WAL, synchronous=FULL (an acknowledged write survives power loss),
// foreign_keys=ON, secure_delete=ON (deleted ciphertext and old token hashes are zeroed, not
// left in free pages), a busy timeout, SQLITE_DBCONFIG_DEFENSIVE and trusted_schema=OFF
// (the file is untrusted input). The file is created mode 0600 by us, never by sqlite; the
// -wal and -shm files inherit that mode (sqlite copies the database file's permissions).
// The schema is versioned (storage/sqlite_schema.h). A missing, unreadable or corrupt file is
// an error, never a silent re-create.
//
// Threads: one writer connection guarded by a mutex, plus a small pool of read connections
// (PRAGMA query_only) for the plain lookups; every connection prepares every statement once and
// reuses it. WAL lets readers run beside the writer, so a read never waits for a write's fsync,
// and each read statement sees every transaction committed before it started (read-your-writes
// holds across connections). Single-statement writes on the hot path (put/delete secret, insert
// token, token expiry) are group-committed: concurrent callers queue, one of them runs the
// queue in one transaction (a savepoint per caller, so one caller's failure leaves the others'
// work intact) and one fsync acknowledges them all. Nobody is answered before the COMMIT that
// holds their write is durable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.h"

struct sqlite3;
struct sqlite3_stmt;

namespace coffer::storage {

class SqliteStorage final : public Storage {
 public:
  // Opens (and with create_if_missing, creates mode 0600) the database at `path`, sets the
  // pragmas and applies pending migrations. Errors carry the path and sqlite's message, e.g.
  // "cannot open database /x/y.db: unable to open database file":
  // failed_precondition (missing file without create_if_missing, permission, a symlink, or a
  // schema newer than this build), data_loss (not a database / corrupt), unavailable (locked
  // or I/O error), internal.
  static Result<std::unique_ptr<SqliteStorage>> open(const std::string& path,
                                                     bool create_if_missing);
  ~SqliteStorage() override;
  SqliteStorage(const SqliteStorage&) = delete;
  SqliteStorage& operator=(const SqliteStorage&) = delete;

  const std::string& path() const { return path_; }

  // What the connection actually runs with (for start-up logs, `cofferctl status`, tests).
  struct Settings {
    std::string journal_mode;      // "wal"
    std::int64_t synchronous = 0;  // 2 = FULL
    bool foreign_keys = false;
    bool secure_delete = false;
    std::int64_t busy_timeout_ms = 0;
    std::int64_t user_version = 0;
  };
  Result<Settings> settings();

  // Copies the WAL into the database file and truncates the WAL (before a file-level backup).
  // Errors: unavailable when readers keep the checkpoint from completing.
  Status checkpoint();

  // --- Storage ---
  Result<std::optional<std::string>> get_meta(const std::string& key) override;
  Status put_meta(const std::string& key, const std::string& value) override;

  Result<std::vector<KeyringRow>> load_keyring() override;
  Status insert_keyring_row(const KeyringRow& row) override;
  Status insert_keyring_rows(const std::vector<KeyringRow>& rows) override;
  // Errors: not_found (no such row), invalid_argument (count above 2^63-1).
  Status add_encryptions(const std::string& purpose, std::uint32_t version,
                         std::uint64_t count) override;

  Result<std::optional<SecretRecord>> get_secret(const std::string& mount,
                                                 const std::string& path) override;
  Status put_secret(const SecretRecord& record) override;
  Result<bool> delete_secret(const std::string& mount, const std::string& path) override;
  // A non-empty prefix without a trailing '/' is treated as the folder "prefix/" (Vault does
  // the same for LIST on "secret/app").
  Result<std::vector<std::string>> list_secrets(const std::string& mount,
                                                const std::string& prefix) override;

  // Errors: already_exists (token or accessor hash taken), not_found (parent_hash names no
  // stored token).
  Status insert_token(const TokenRow& row) override;
  Result<std::optional<TokenRow>> get_token(const std::vector<std::uint8_t>& token_hash) override;
  Result<std::optional<TokenRow>> get_token_by_accessor(
      const std::vector<std::uint8_t>& accessor_hash) override;
  // Errors: not_found (no such token).
  Status update_token_expiry(const std::vector<std::uint8_t>& token_hash,
                             std::int64_t expires_at) override;
  Result<std::uint64_t> delete_token_tree(const std::vector<std::uint8_t>& token_hash) override;
  // Children of an expired token go with it (Vault revokes a child when its parent ends);
  // the count includes them.
  Result<std::uint64_t> delete_expired_tokens(std::int64_t now) override;
  // Moves when the writer lock is released after any statement that updates or deletes token
  // rows ran under it (by then the transaction holding it has committed or rolled back; see
  // WriterLock). Changes made by another process are not seen: cofferd holds the database alone
  // (daemon/instance_lock.h).
  std::optional<std::uint64_t> token_generation() const override {
    return token_generation_.load(std::memory_order_acquire);
  }

  Status put_policy(const NamedDocument& doc) override;
  Result<std::optional<NamedDocument>> get_policy(const std::string& name) override;
  Result<bool> delete_policy(const std::string& name) override;
  Result<std::vector<std::string>> list_policies() override;

  Status put_cert_role(const NamedDocument& doc) override;
  Result<std::optional<NamedDocument>> get_cert_role(const std::string& name) override;
  Result<bool> delete_cert_role(const std::string& name) override;
  Result<std::vector<std::string>> list_cert_roles() override;

  Status put_approle_role(const ApproleRoleRow& row) override;
  Result<std::optional<ApproleRoleRow>> get_approle_role(const std::string& name) override;
  Result<std::optional<ApproleRoleRow>> get_approle_role_by_role_id(const std::string& role_id) override;
  Result<bool> delete_approle_role(const std::string& name) override;
  Result<std::vector<std::string>> list_approle_roles() override;

  Status insert_secret_id(const SecretIdRow& row) override;
  Result<std::optional<SecretIdRow>> get_secret_id(const std::vector<std::uint8_t>& secret_id_hash) override;
  Result<std::optional<SecretIdRow>> get_secret_id_by_accessor(
      const std::vector<std::uint8_t>& accessor_hash) override;
  Result<std::vector<std::string>> list_secret_id_accessors(const std::string& role_name) override;
  Result<bool> delete_secret_id(const std::vector<std::uint8_t>& secret_id_hash) override;
  Result<SecretIdUse> use_secret_id(const std::vector<std::uint8_t>& secret_id_hash,
                                    const std::string& role_name, std::int64_t now,
                                    std::int64_t tombstone_until, const TokenRow& token) override;
  Result<std::uint64_t> delete_expired_secret_ids(std::int64_t now) override;

  Status insert_wrapped_response(const TokenRow& token, const WrappedResponseRow& row) override;
  Result<std::optional<WrappedResponseRow>> get_wrapped_response(
      const std::vector<std::uint8_t>& token_hash) override;
  Result<std::optional<WrappedResponseRow>> take_wrapped_response(
      const std::vector<std::uint8_t>& token_hash) override;
  Result<bool> replace_wrapped_response(const std::vector<std::uint8_t>& old_token_hash,
                                        const TokenRow& token, const WrappedResponseRow& row) override;

  Result<bool> record_nonce(const std::string& scope, const std::string& nonce,
                            std::int64_t expires_at) override;
  Result<std::uint64_t> delete_expired_nonces(std::int64_t now) override;

  // How many read connections open() adds beside the writer.
  static constexpr std::size_t kReadConnections = 4;

 private:
  class Query;        // a borrowed cached statement: binds, steps, resets on destruction
  class Transaction;  // BEGIN IMMEDIATE ... COMMIT, rolled back unless committed
  // A read connection and its statement cache, used by one caller at a time.
  struct Reader {
    sqlite3* db = nullptr;
    std::vector<sqlite3_stmt*> statements;
    std::mutex mu;
  };
  class ReadLease;    // a Reader locked for one operation
  // Holds mu_ (the writer); on release, moves token_generation_ if a token-changing statement
  // ran under it. Every writer operation takes mu_ through this, never directly.
  class WriterLock {
   public:
    explicit WriterLock(SqliteStorage& owner) : owner_(owner) { owner_.mu_.lock(); }
    ~WriterLock() {
      if (owner_.tokens_changed_) {
        owner_.tokens_changed_ = false;
        owner_.token_generation_.fetch_add(1, std::memory_order_acq_rel);
      }
      owner_.mu_.unlock();
    }
    WriterLock(const WriterLock&) = delete;
    WriterLock& operator=(const WriterLock&) = delete;

   private:
    SqliteStorage& owner_;
  };
  // A caller waiting in the group-commit queue.
  struct PendingWrite {
    const std::function<Status()>* op;
    Status result;
    bool done = false;
  };
  SqliteStorage(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  // Open-time steps; their messages get the "cannot open database <path>: " prefix in open().
  Status configure();
  Status migrate();
  Status prepare_all();
  Status open_readers();
  ReadLease read();
  // Runs `op` (which uses the writer connection and must not lock mu_) inside a group commit.
  Status grouped(const std::function<Status()>& op);
  void run_batch(const std::vector<PendingWrite*>& batch);
  Status exec_raw(const std::string& sql);
  Result<std::string> query_text(const char* sql);
  Result<std::int64_t> query_int(const char* sql);
  // An operation's failure: "<what> failed on database <path>: <sqlite message>".
  Status error(sqlite3* db, int rc, std::string_view what) const;

  Status insert_keyring_row_locked(const KeyringRow& row);
  Status insert_token_locked(const TokenRow& row);
  Status insert_wrapped_locked(const TokenRow& token, const WrappedResponseRow& row);
  Result<std::optional<WrappedResponseRow>> get_wrapped_locked(Reader* reader,
                                                                const std::vector<std::uint8_t>& token_hash);
  // On the writer (inside a transaction) when `reader` is null, else on that reader.
  Result<std::optional<SecretIdRow>> get_secret_id_by(Reader* reader, int sql,
                                                      const std::vector<std::uint8_t>& key,
                                                      std::string_view what);
  Result<std::optional<ApproleRoleRow>> get_approle_role_by(int sql, const std::string& key,
                                                            std::string_view what);
  Result<std::optional<TokenRow>> get_token_by(int sql, const std::vector<std::uint8_t>& key,
                                               std::string_view what);
  Status update_token_expiry_locked(const std::vector<std::uint8_t>& token_hash, std::int64_t expires_at);
  // Deletes the tokens `delete_sql` selects with their descendants, counted by `count_sql`
  // first, in one transaction; `bind` binds the same parameters to both.
  Result<std::uint64_t> delete_tree(int count_sql, int delete_sql,
                                    const std::function<void(Query&)>& bind,
                                    std::string_view what);
  Status put_document(int sql, const NamedDocument& doc, std::string_view what);
  Result<std::optional<NamedDocument>> get_document(int sql, const std::string& name,
                                                    std::string_view what);
  Result<bool> delete_document(int sql, const std::string& name, std::string_view what);
  Result<std::vector<std::string>> list_documents(int sql, std::string_view what);

  sqlite3* db_ = nullptr;  // the writer
  std::string path_;
  std::mutex mu_;  // guards db_, its cached statements and tokens_changed_ (take it by WriterLock)
  bool tokens_changed_ = false;  // a statement that updates or deletes token rows ran under mu_
  std::atomic<std::uint64_t> token_generation_{0};
  std::vector<sqlite3_stmt*> statements_;  // the writer's, indexed by the Sql enum in the .cpp
  std::vector<std::unique_ptr<Reader>> readers_;

  std::mutex group_mu_;  // guards the three below
  std::condition_variable group_cv_;
  std::vector<PendingWrite*> group_queue_;
  bool group_leader_active_ = false;
};

}  // namespace coffer::storage
