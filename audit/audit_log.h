// AuditLog: the tamper-evident audit trail. Each call to log() redacts one Vault-shaped entry
// (redact.h, record.h), adds `seq` and `prev` (hex SHA-256 of the previous line) and appends it to
// the sink with one write. Redaction and serialisation happen before the lock is taken; under it
// only the chain fields are placed, the line hashed and written. Checkpoint records carrying an
// HMAC over (seq, prev) with a key derived from the keyring are written at open, every
// `checkpoint_every` records and at close; each checkpoint also stores the chain head in the
// database, so a truncated or regrown log is found by `cofferctl audit verify`. Fail closed: when
// log() fails the caller must refuse the request.
// Thread-safe: records are serialised under one mutex (the chain is a total order).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "audit/chain.h"
#include "audit/record.h"
#include "audit/sink.h"
#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "crypto/secret_json.h"
#include "storage/storage.h"

namespace coffer::audit {

struct AuditOptions {
  // true: fdatasync after every record (each record durable before the request proceeds).
  // false: group commit, a background thread syncs at most `sync_interval_ms` after a write.
  bool fsync_always = false;
  std::int64_t sync_interval_ms = 50;
  std::uint64_t checkpoint_every = 1000;  // records between checkpoints
};
// (Size rotation is the sink's: FileSink::open(path, rotate_bytes). Each file then ends with a
// "rotate" checkpoint and the next one continues the chain.)

class AuditLog {
 public:
  // Resumes the chain from the sink's last line (or from the database head when the sink is
  // empty, e.g. the operator moved the old file aside) and writes the start checkpoint.
  // `storage` may be null (no head kept; tests). Errors: unavailable (sink), data_loss (the file
  // ends before the database head: records were removed; or a malformed last line), internal.
  static Result<std::unique_ptr<AuditLog>> open(std::unique_ptr<AuditSink> sink,
                                                const crypto::SecretBytes& audit_hmac_key,
                                                storage::Storage* storage, AuditOptions options);
  ~AuditLog();  // stops the sync thread; call close() first for the shutdown checkpoint
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends one entry (a JSON object with at least "type"). `time` is added when absent.
  // Errors: unavailable (the record is not in the kernel: refuse the request), internal,
  // invalid_argument (a field that must stay in clear is not valid UTF-8).
  Status log(const crypto::SecretJson& entry);
  // The same for a record built member by member (record.h): an empty record bound to this log's
  // HMAC key, to fill with Record::set and pass to log(). Records may be copied, so members that
  // two records share are redacted once.
  Record record() const { return Record(hmac_key_); }
  Status log(Record record);
  // Two records with consecutive sequence numbers, in one write(2) when no checkpoint falls
  // between them (a refused request: its request and response records are both known at once).
  // Both are in the kernel, or neither is, when this returns. Errors: as log().
  Status log(Record first, Record second);
  // Writes the shutdown checkpoint, syncs, and stores the head as "stopped". Idempotent.
  Status close();
  // SIGHUP: reopens the sink (after a fault or after the file was moved aside) and writes a
  // checkpoint so the new file starts with a MAC'd anchor.
  Status reopen();
  // Group commit: syncs when records were written since the last sync.
  Status flush();
  // The form a value takes in the log ("hmac-sha256:<hex>"), for sys/audit-hash.
  Result<std::string> hash(std::string_view value) const;
  Head head() const;
  std::string describe() const { return sink_->describe(); }

 private:
  AuditLog(std::unique_ptr<AuditSink> sink, crypto::SecretBytes hmac_key, crypto::SecretBytes ckpt_key,
           storage::Storage* storage, AuditOptions options);
  // Fills in `time` when absent; checks for "type".
  Status prepare(Record& record) const;
  // Appends records (one write) and advances the chain. Checkpoints are the caller's.
  Status append_locked(const Record* const* records, std::size_t n);
  Status append_locked(const Record& record) {
    const Record* one[] = {&record};
    return append_locked(one, 1);
  }
  Status after_append_locked(std::uint64_t n);
  Status checkpoint_locked(const std::string& reason, bool stopped);
  Status rotate_locked();
  void sync_loop();

  std::unique_ptr<AuditSink> sink_;
  crypto::SecretBytes hmac_key_;
  crypto::SecretBytes ckpt_key_;
  storage::Storage* storage_;
  AuditOptions options_;

  mutable std::mutex mu_;
  std::uint64_t seq_ = 0;  // seq of the last record written
  std::string prev_ = kGenesisHash;
  std::uint64_t since_checkpoint_ = 0;
  bool dirty_ = false;
  bool closed_ = false;
  bool rotating_ = false;

  std::condition_variable cv_;
  bool stop_thread_ = false;
  std::thread syncer_;
};

// ISO 8601 UTC with microseconds, as Vault writes `time`.
std::string audit_time_now();

}  // namespace coffer::audit
