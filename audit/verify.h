// Verification of audit files: the hash chain across one or more files (in order), the
// checkpoint MACs, and the chain head stored in the database. Reports the first bad record by
// sequence number, file and byte offset, with what is wrong: edited, deleted, reordered,
// truncated, forged checkpoint, or records not covered by any checkpoint after a clean stop.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "audit/chain.h"
#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::audit {

struct VerifyOptions {
  const crypto::SecretBytes* checkpoint_key = nullptr;  // null: MACs not checked (said in warnings)
  std::optional<Head> db_head;                          // the head stored in the database
};

struct Finding {
  std::string file;
  std::uint64_t offset = 0;  // byte offset of the record's line in `file`
  std::uint64_t seq = 0;     // the record's sequence number (or the expected one)
  std::string problem;
};

struct VerifyReport {
  std::uint64_t records = 0;
  std::uint64_t checkpoints = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::optional<Finding> failure;      // the first problem; none means the log verified
  std::vector<std::string> warnings;   // facts an auditor should know that are not failures
  bool ok() const { return !failure.has_value(); }
};

// Errors: not_found / unavailable when a file cannot be read (tampering is a report, not an error).
Result<VerifyReport> verify_files(const std::vector<std::string>& files, const VerifyOptions& options);

}  // namespace coffer::audit
