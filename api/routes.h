// Internal to api/: the per-request context handed to each group of Vault endpoints, and the
// handlers of each group (routes_*.cpp). Not used outside api/.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/vault_json.h"
#include "api/vault_router.h"
#include "auth/policy.h"

namespace coffer::api {

struct Call {
  HttpRequest& http;
  std::string request_id;
  std::string method;                        // GET, HEAD, LIST, PUT (POST is PUT), DELETE
  std::string path;                          // below /v1/, no leading '/'
  std::string_view token;                    // as presented (empty when none)
  std::optional<auth::TokenInfo> caller;     // set after authentication
  std::shared_ptr<const auth::Acl> acl;      // set after authentication
  // What the audit record's "error" says instead of the client's message, when the two differ
  // (a login refused by a lockout: the client gets Vault's "permission denied", the audit log
  // names the locked identity and until when).
  std::string audit_error = {};
  // X-Vault-Wrap-TTL in seconds, when the client asked for response wrapping (checked against the
  // maximum before routing; policies' min/max_wrapping_ttl see it through `allowed`).
  std::optional<std::int64_t> wrap_ttl = {};
};

// Unauthenticated endpoints. Return nullopt when the path is not theirs.
std::optional<HttpResponse> route_unauthenticated(Services& s, Call& call);
// Cert login (auth/cert/login and the short form auth): authenticated by the TLS client
// certificate, not by a token.
std::optional<HttpResponse> route_login(Services& s, Call& call);
// AppRole (routes_approle.cpp): the login, reached through route_login (no token), and the role
// and secret-ID administration, reached through route_auth. Both nullopt when Services::approle
// is null.
std::optional<HttpResponse> route_approle_login(Services& s, Call& call);
std::optional<HttpResponse> route_approle(Services& s, Call& call);
// Authenticated endpoints; each checks capabilities through `allowed`.
std::optional<HttpResponse> route_sys(Services& s, Call& call);
std::optional<HttpResponse> route_auth(Services& s, Call& call);
std::optional<HttpResponse> route_kv(Services& s, Call& call);

// The ACL check every authenticated handler uses.
bool allowed(const Call& call, std::string_view path, auth::Capability capability);
HttpResponse permission_denied();
HttpResponse unsupported_operation();
// 200 with Vault's "auth" block for a token just issued to the caller (routes_auth.cpp).
HttpResponse auth_response(const Call& call, std::string_view token, const auth::TokenInfo& info);
// Parses the body as a JSON object within coffer's limits; on failure `error` is set.
std::optional<SecretJson> body_object(Services& s, Call& call, HttpResponse& error);
// Copies plain JSON-able strings into SecretJson.
inline SecretJson::string_t js(std::string_view v) { return SecretJson::string_t(v.begin(), v.end()); }
// A JSON array of strings (policy names, list keys).
inline SecretJson string_array(const std::vector<std::string>& v) {
  SecretJson a = SecretJson::array();
  for (const auto& s : v) a.push_back(js(s));
  return a;
}

}  // namespace coffer::api
