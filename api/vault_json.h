// Vault's wire shapes: the response envelope, error bodies, status-code mapping, and request-body
// parsing with coffer's limits (JSON depth, object-only bodies). Bodies are built as SecretJson so
// secrets and tokens in them live only in wiped memory until handed to libmicrohttpd.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.h"
#include "common/status.h"
#include "crypto/secret_json.h"

namespace coffer::api {

using crypto::SecretJson;

// {"errors": [...]} with the given status. An empty list is Vault's 404 body.
HttpResponse error_response(int status, const std::vector<std::string>& errors);
// Maps a Status onto Vault's code and message. Internal and data-loss errors never expose the
// underlying message to the client (it is logged by the caller instead).
HttpResponse status_response(const Status& status);
int http_status_for(Code code);

HttpResponse json_response(int status, const SecretJson& body);
HttpResponse no_content();

// The logical-response envelope with every field Vault sends, zero-valued.
SecretJson envelope(const std::string& request_id);

// 200 with that envelope around `data_json`, a JSON object already as text (a stored secret), and
// the given lease_duration and mount_type: the bytes json_response() of the envelope gives when
// the text is as dump() writes it, built without a DOM. `data_json` must be one valid JSON value.
HttpResponse envelope_response(const std::string& request_id, const crypto::SecretBytes& data_json,
                               std::int64_t lease_duration, std::string_view mount_type);

// Parses a request body that must be a JSON object (an empty body is an empty object).
// Errors (invalid_argument, with a message safe to echo: it names a byte offset, never input
// bytes): malformed JSON, nesting deeper than max_depth, a top level that is not an object.
Result<SecretJson> parse_object_body(const crypto::SecretBytes& body, std::size_t max_depth);

}  // namespace coffer::api
