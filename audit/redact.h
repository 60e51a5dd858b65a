// Redaction of audit entries: every string and number is replaced by "hmac-sha256:<hex>" keyed
// with the audit-HMAC key, except the fields on an allow-list of exact JSON positions (request
// path, operation, remote address, ...). The allow-list names positions, not key names, so a
// secret stored under a key called "path" inside request.data is still HMAC'd. Numbers are
// HMAC'd too (Vault leaves them in clear; a numeric PIN in a KV secret must not leak).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "crypto/secret_json.h"

namespace coffer::audit {

// "hmac-sha256:" + hex(HMAC-SHA256(key, value)). Errors: internal.
Result<std::string> hmac_value(const crypto::SecretBytes& key, std::string_view value);

// True when the JSON position (e.g. "/request/path", "/auth/policies/*" for any array element)
// is on the allow-list.
bool allow_listed(std::string_view pointer);

// The redacted copy of `entry`. Errors: internal (HMAC failure).
Result<nlohmann::json> redact(const crypto::SecretBytes& key, const crypto::SecretJson& entry);

// The same redaction written straight out as JSON text: appends to `out` exactly the bytes that
// redact() of a value at JSON position `pointer` (e.g. "/request") would dump to, without the
// redacted copy (this is the audit log's hot path: one record per request and per response).
// `pointer` is restored before returning. Errors: internal (HMAC failure), invalid_argument (a key
// or a string left in clear is not valid UTF-8: JSON text must be, and nlohmann's dump throws).
Status redact_to_text(const crypto::SecretBytes& key, const crypto::SecretJson& value, std::string& pointer,
                      std::string& out);

// Appends `s` as a JSON string literal, escaped as nlohmann::json::dump() escapes it (\", \\,
// \b \f \n \r \t, other control characters as \u00xx, everything else as is). Returns false,
// leaving `out` unspecified, when `s` is not valid UTF-8.
bool append_json_string(std::string& out, std::string_view s);

}  // namespace coffer::audit
