// Internal to api/: X-Coffer-Nonce at the HTTP layer (docs/api.md, "Request nonces"). The check
// and the atomic record are auth::NonceGuard's; this maps its outcome onto Vault-style answers.
#pragma once

#include <optional>

#include "api/routes.h"
#include "auth/nonce_guard.h"

namespace coffer::api {

// For a state-changing call (PUT/POST, DELETE) carrying X-Coffer-Nonce: records the nonce in the
// caller's scope (its client certificate) before anything runs, or refuses — 400 malformed or
// outside the window, 409 {"errors":["request nonce has already been used"]} for a replay, 503
// when it cannot be recorded. nullopt: no nonce, another method, or a fresh nonce now recorded.
// `guard` null: a nonce cannot be honoured, so a request carrying one is refused (400).
std::optional<HttpResponse> request_nonce_refusal(auth::NonceGuard* guard, Call& call);

}  // namespace coffer::api
