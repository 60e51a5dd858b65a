// The KV version 1 secrets engine (Vault's `kv` with options.version "1"), mounted at "secret/".
// Values are JSON objects, stored whole (a write replaces, never merges), sealed by the barrier.
// Paths arrive relative to the mount ("app/db"); the HTTP layer already refused "..", "//",
// NUL and control characters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "crypto/secret_json.h"
#include "storage/barrier.h"

namespace coffer::engines {

inline constexpr std::int64_t kDefaultKvLeaseSeconds = 2764800;  // Vault's 32-day mount default

// A secret as stored: the JSON text of its object, in wiped memory. What a read answers with,
// when the answer only wraps the secret (no DOM built and serialised again).
struct KvSecretText {
  crypto::SecretBytes json;  // checked: one JSON object, nothing after it
  std::int64_t lease_duration = kDefaultKvLeaseSeconds;  // from an advisory "ttl" key, if any
};

class KvEngine {
 public:
  explicit KvEngine(storage::Barrier& barrier, std::string mount = "secret/");

  const std::string& mount() const { return mount_; }

  // The secret as its stored JSON text, checked by one SAX pass (which also finds the top-level
  // "ttl") instead of a DOM. nullopt when absent. Errors: data_loss (record fails
  // authentication), internal (the stored text is not one JSON object).
  Result<std::optional<KvSecretText>> read_text(const std::string& path);
  // Errors: invalid_argument (bad path), internal.
  Status write(const std::string& path, const crypto::SecretJson& data);
  Result<bool> exists(const std::string& path);
  Status remove(const std::string& path);
  // Immediate children of `prefix` ("" or ending in '/').
  Result<std::vector<std::string>> list(const std::string& prefix);

  // A secret path: non-empty, no leading or trailing '/', no empty segment.
  static Status validate_path(const std::string& path);

 private:
  storage::Barrier& barrier_;
  std::string mount_;
};

}  // namespace coffer::engines
