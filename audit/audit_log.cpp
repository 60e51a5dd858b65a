// AuditLog: chaining, checkpoints, durability (see audit_log.h).
#include "audit/audit_log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>

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

Status AuditLog::append_locked(const Record* const* records, std::size_t n) {
  if (closed_) return Error(Code::unavailable, "audit log is closed");
  if (!rotating_ && sink_->wants_rotation()) COFFER_RETURN_IF_ERROR(rotate_locked());
  std::string lines;
  std::uint64_t seq = seq_;
  std::string prev = prev_;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t start = lines.size();
    records[i]->append_line(seq + 1, prev, lines);
    prev = line_hash(std::string_view(lines).substr(start));
    lines.push_back('\n');
    ++seq;
  }
  // One write for all of them: the sink cuts a short write back, so either every record is in
  // the kernel and the chain advances, or none is and it stays where it was.
  COFFER_RETURN_IF_ERROR(sink_->append(lines));
  seq_ = seq;
  prev_ = std::move(prev);
  dirty_ = true;
  if (options_.fsync_always) {
    COFFER_RETURN_IF_ERROR(sink_->sync());
    dirty_ = false;
  }
  return Status::Ok();
}

Status AuditLog::after_append_locked(std::uint64_t n) {
  since_checkpoint_ += n;
  if (since_checkpoint_ >= options_.checkpoint_every) {
    COFFER_RETURN_IF_ERROR(checkpoint_locked("interval", false));
  }
  return Status::Ok();
}

Status AuditLog::checkpoint_locked(const std::string& reason, bool stopped) {
  const std::uint64_t seq = seq_ + 1;
  COFFER_ASSIGN_OR_RETURN(auto mac, checkpoint_mac(ckpt_key_, seq, prev_, reason));
  // Written as it is (not redacted): the reason is coffer's own word and the MAC is public.
  Record record = this->record();
  record.set_text("time", nlohmann::json(audit_time_now()).dump());
  record.set_text("type", "\"checkpoint\"");
  record.set_text("checkpoint", nlohmann::json{{"reason", reason}, {"mac", mac}}.dump());
  COFFER_RETURN_IF_ERROR(append_locked(record));
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
  if (!entry.is_object()) return Error(Code::internal, "audit entry must be an object with a type");
  Record r = record();
  for (auto it = entry.begin(); it != entry.end(); ++it) {
    const std::string_view name(it.key().data(), it.key().size());
    if (name == "seq" || name == "prev") continue;  // the chain's own fields replace these
    COFFER_RETURN_IF_ERROR(r.set(name, it.value()));
  }
  return log(std::move(r));
}

Status AuditLog::prepare(Record& record) const {
  if (!record.has("type")) return Error(Code::internal, "audit entry must be an object with a type");
  if (!record.has("time")) {
    std::string time = "\"";
    time += audit_time_now();
    time += '"';
    record.set_text("time", time);
  }
  return Status::Ok();
}

Status AuditLog::log(Record record) {
  COFFER_RETURN_IF_ERROR(prepare(record));
  std::lock_guard<std::mutex> lock(mu_);
  COFFER_RETURN_IF_ERROR(append_locked(record));
  return after_append_locked(1);
}

Status AuditLog::log(Record first, Record second) {
  COFFER_RETURN_IF_ERROR(prepare(first));
  COFFER_RETURN_IF_ERROR(prepare(second));
  std::lock_guard<std::mutex> lock(mu_);
  if (since_checkpoint_ + 1 < options_.checkpoint_every) {
    // No checkpoint falls between them: one write.
    const Record* both[] = {&first, &second};
    COFFER_RETURN_IF_ERROR(append_locked(both, 2));
    return after_append_locked(2);
  }
  // A checkpoint is due after the first: the same sequence as two log() calls.
  COFFER_RETURN_IF_ERROR(append_locked(first));
  COFFER_RETURN_IF_ERROR(after_append_locked(1));
  COFFER_RETURN_IF_ERROR(append_locked(second));
  return after_append_locked(1);
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
