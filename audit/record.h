// Record: one audit record under construction, held as its top-level members already redacted
// to JSON text (redact.h). AuditLog::record() hands out an empty one bound to the log's HMAC key;
// AuditLog::log(Record) adds `time` (when absent), `seq` and `prev` and writes the line.
//
// Why members and not one JSON object: the request record and the response record of one request
// share most of their content (the "request" block with its body, the caller's "auth" block with
// the token and accessor). Redacting those once and copying the text into both records halves the
// HMACs and the serialisation per audited request. The line is byte-for-byte what
// redact(entry).dump() gave: members sorted by name as nlohmann::json sorts them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "crypto/secret_json.h"

namespace coffer::audit {

class Record {
 public:
  // Redacts `value` as the top-level member `name` (its JSON position is "/<name>"), replacing a
  // member of that name. "seq" and "prev" belong to the chain and are refused (invalid_argument).
  // Errors: as redact_to_text (internal: HMAC failure; invalid_argument: not valid UTF-8).
  Status set(std::string_view name, const crypto::SecretJson& value);
  bool has(std::string_view name) const;
  bool empty() const { return members_.empty(); }

 private:
  friend class AuditLog;
  explicit Record(const crypto::SecretBytes& key) : key_(&key) {}
  // For AuditLog: a member whose JSON value the log produced itself (the time stamp).
  void set_text(std::string_view name, std::string_view json_value);
  void set_member(std::string_view name, std::string text);
  // Appends the line without its newline: the members with "prev" and "seq" in their sorted
  // places.
  void append_line(std::uint64_t seq, std::string_view prev, std::string& out) const;

  const crypto::SecretBytes* key_;  // the log's audit-HMAC key; the log outlives its records
  // Sorted by name: (name, `"name":<redacted JSON value>`).
  std::vector<std::pair<std::string, std::string>> members_;
};

}  // namespace coffer::audit
