// AuditLog: chaining, checkpoints, durability (see audit_log.h).
#include "audit/audit_log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

#include "audit/redact.h"

namespace coffer::audit {

std::string audit_time_now() {
  const auto now = std::chrono::system_clock::now();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(us % 1000000));
  return buf;
}

AuditLog::AuditLog(std::unique_ptr<AuditSink> sink, crypto::SecretBytes hmac_key, crypto::SecretBytes ckpt_key,
                   storage::Storage* storage, AuditOptions options)
    : sink_(std::move(sink)),
      hmac_key_(std::move(hmac_key)),
      ckpt_key_(std::move(ckpt_key)),
      storage_(storage),
      options_(options) {}

Result<std::unique_ptr<AuditLog>> AuditLog::open(std::unique_ptr<AuditSink> sink,
                                                 const crypto::SecretBytes& audit_hmac_key,
                                                 storage::Storage* storage, AuditOptions options) {
  if (options.checkpoint_every == 0) return Error(Code::invalid_argument, "checkpoint_every must be at least 1");
  COFFER_ASSIGN_OR_RETURN(auto ckpt_key, derive_checkpoint_key(audit_hmac_key));
  std::unique_ptr<AuditLog> log(
      new AuditLog(std::move(sink), audit_hmac_key.clone(), std::move(ckpt_key), storage, options));

  Head stored;
  if (storage != nullptr) {
    COFFER_ASSIGN_OR_RETURN(auto text, storage->get_meta(kHeadMetaKey));
    if (text.has_value()) {
      COFFER_ASSIGN_OR_RETURN(stored, decode_head(*text));
    }
  }
  COFFER_ASSIGN_OR_RETURN(std::string last, log->sink_->last_line());
  if (last.empty()) {
    // A new file: continue the chain from the database head (the old file was moved aside).
    log->seq_ = stored.seq;
    log->prev_ = stored.hash;
  } else {
    auto j = nlohmann::json::parse(last, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned()) {
      return Error(Code::data_loss, "the last record of audit file " + log->sink_->describe() +
                                        " is malformed; move the file aside and run cofferctl audit verify on it");
    }
    log->seq_ = j["seq"].get<std::uint64_t>();
    log->prev_ = line_hash(last);
    if (log->seq_ < stored.seq) {
      return Error(Code::data_loss, "audit file " + log->sink_->describe() + " ends at record " +
                                        std::to_string(log->seq_) + " but the database records the chain up to " +
                                        std::to_string(stored.seq) +
                                        ": records were removed. Move the file aside (cofferd continues the chain "
                                        "in a new file) and run cofferctl audit verify on it");
    }
  }
  {
    std::lock_guard<std::mutex> lock(log->mu_);
    COFFER_RETURN_IF_ERROR(log->checkpoint_locked("start", false));
  }
  if (!options.fsync_always) log->syncer_ = std::thread([raw = log.get()] { raw->sync_loop(); });
  return log;
}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_thread_ = true;
  }
  cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
}

void AuditLog::sync_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_thread_) {
    cv_.wait_for(lock, std::chrono::milliseconds(options_.sync_interval_ms));
    if (!dirty_) continue;
    // A failed background sync is retried next round; a broken sink fails the next append.
    const int fd = sink_->sync_fd() >= 0 ? ::dup(sink_->sync_fd()) : -1;
    if (fd < 0) {
      if (sink_->sync().ok()) dirty_ = false;
      continue;
    }
    // Flush a duplicate of the descriptor with the lock released: appends go on meanwhile
    // (records written during the flush stay dirty only if they came after it started).
    dirty_ = false;
    lock.unlock();
    const bool synced = ::fdatasync(fd) == 0;
    ::close(fd);
    lock.lock();
    if (!synced) dirty_ = true;
  }
}

Status AuditLog::append_locked(nlohmann::json record) {
  if (closed_) return Error(Code::unavailable, "audit log is closed");
  if (!rotating_ && sink_->wants_rotation()) COFFER_RETURN_IF_ERROR(rotate_locked());
  record["seq"] = seq_ + 1;
  record["prev"] = prev_;
  std::string line = record.dump();
  const std::string hash = line_hash(line);
  line += '\n';
  COFFER_RETURN_IF_ERROR(sink_->append(line));
  ++seq_;
  prev_ = hash;
  dirty_ = true;
  if (options_.fsync_always) {
    COFFER_RETURN_IF_ERROR(sink_->sync());
    dirty_ = false;
  }
  return Status::Ok();
}

Status AuditLog::checkpoint_locked(const std::string& reason, bool stopped) {
  const std::uint64_t seq = seq_ + 1;
  COFFER_ASSIGN_OR_RETURN(auto mac, checkpoint_mac(ckpt_key_, seq, prev_, reason));
  nlohmann::json record{{"time", audit_time_now()}, {"type", "checkpoint"},
                        {"checkpoint", {{"reason", reason}, {"mac", mac}}}};
  COFFER_RETURN_IF_ERROR(append_locked(std::move(record)));
  since_checkpoint_ = 0;
  // The head in the database is only worth something if the checkpoint is on disk first.
  COFFER_RETURN_IF_ERROR(sink_->sync());
  dirty_ = false;
  if (storage_ != nullptr) {
    Head h{seq_, prev_, stopped};
    COFFER_RETURN_IF_ERROR(storage_->put_meta(kHeadMetaKey, encode_head(h))
                               .with_context("cannot store the audit chain head in the database"));
  }
  return Status::Ok();
}

// The old file ends with a checkpoint (so each file is MAC-covered on its own); the new file's
// first record links to it. If the rename fails the next record tries again.
Status AuditLog::rotate_locked() {
  rotating_ = true;
  Status st = checkpoint_locked("rotate", false);
  rotating_ = false;
  COFFER_RETURN_IF_ERROR(st);
  return sink_->rotate();
}

Status AuditLog::log(const crypto::SecretJson& entry) {
  COFFER_ASSIGN_OR_RETURN(nlohmann::json record, redact(hmac_key_, entry));
  if (!record.is_object() || !record.contains("type")) {
    return Error(Code::internal, "audit entry must be an object with a type");
  }
  if (!record.contains("time")) record["time"] = audit_time_now();
  std::lock_guard<std::mutex> lock(mu_);
  COFFER_RETURN_IF_ERROR(append_locked(std::move(record)));
  if (++since_checkpoint_ >= options_.checkpoint_every) {
    COFFER_RETURN_IF_ERROR(checkpoint_locked("interval", false));
  }
  return Status::Ok();
}

Status AuditLog::close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Status::Ok();
  Status st = checkpoint_locked("shutdown", true);
  closed_ = true;
  return st;
}

Status AuditLog::reopen() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Error(Code::failed_precondition, "audit log is closed");
  COFFER_RETURN_IF_ERROR(sink_->reopen());
  return checkpoint_locked("reopen", false);
}

Status AuditLog::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!dirty_) return Status::Ok();
  COFFER_RETURN_IF_ERROR(sink_->sync());
  dirty_ = false;
  return Status::Ok();
}

Result<std::string> AuditLog::hash(std::string_view value) const { return hmac_value(hmac_key_, value); }

Head AuditLog::head() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Head{seq_, prev_, closed_};
}

}  // namespace coffer::audit
