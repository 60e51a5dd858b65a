// Internal to api/: response wrapping at the HTTP layer (vault-api.md §1.11) — the
// X-Vault-Wrap-TTL header, the confinement of wrapping tokens, the policies' wrapping TTL bounds,
// wrapping a handler's response, and the sys/wrapping/* endpoints. The wrapping itself (tokens,
// sealing, exactly-once) is engines::WrappingEngine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "api/routes.h"
#include "audit/audit_log.h"

namespace coffer::api {

// X-Vault-Wrap-TTL as seconds (nullopt: absent or empty). Vault accepts seconds ("60") or a
// duration ("60s", "5m"). Errors (invalid_argument, the message names the header and the bound):
// unparsable, under 1s, above `max_seconds`, an X-Vault-Wrap-Format other than "token".
Result<std::optional<std::int64_t>> parse_wrap_ttl(const HttpRequest& req, std::int64_t max_seconds);

// sys/wrapping/lookup, unwrap and rewrap: the paths that name a wrapping token, either as the
// caller's token or as "token" in the body. A failed token lookup is not a refusal there (the
// handler answers Vault's 400 for an invalid wrapping token), and the only paths a wrapping token
// may be used on.
bool wrapping_token_path(const std::string& path);

// Before any authenticated handler: 403 for a wrapping token anywhere but wrapping_token_path,
// and 403 (saying why) when the governing policy rule's min/max_wrapping_ttl refuses the
// request's wrap TTL. nullopt: go on.
std::optional<HttpResponse> wrapping_refusal(Call& call);

// sys/wrapping/{wrap,unwrap,lookup,rewrap}; nullopt for other paths. `audit` (may be null) names
// an unusable wrapping token in the incident warning by its audit HMAC.
std::optional<HttpResponse> route_wrapping(Services& s, Call& call, const audit::AuditLog* audit);

// When the call asked for wrapping and `response` is a success with a body: the response sealed
// under a new wrapping token, and the client gets only wrap_info. Otherwise `response` as is.
HttpResponse wrap_response(Services& s, Call& call, HttpResponse response);

}  // namespace coffer::api
