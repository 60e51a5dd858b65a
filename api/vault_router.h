// VaultRouter: turns a typed HttpRequest into Vault's logical operation and response shape.
// Order for every request: method and path normalisation, X-Vault-Wrap-TTL checked -> rate limits
// per client certificate and source address (exempt: sys/health, sys/seal-status, sys/leader) ->
// X-Coffer-Nonce recorded (state-changing calls that send one) -> unauthenticated endpoints
// (sys/health, sys/seal-status, sys/leader, cert and AppRole login) -> token lookup (bound-certificate
// check included; wrapping tokens confined to sys/wrapping/) -> ACL check for the exact path and
// capability (with the policies' wrapping TTL bounds) -> the handler -> response wrapping, when
// asked for. Anything that cannot be checked is refused (fail closed). The router never touches sqlite or the key
// protector: it only calls auth/, engines/ and audit/.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "api/http_types.h"
#include "api/rate_limit.h"
#include "audit/audit_log.h"
#include "auth/approle.h"
#include "auth/cert_roles.h"
#include "auth/login_lockout.h"
#include "auth/nonce_guard.h"
#include "auth/policy_store.h"
#include "auth/token_store.h"
#include "engines/kv_engine.h"
#include "engines/wrapping.h"

namespace coffer::api {

// Facts about this server that sys/health and sys/seal-status report.
struct ServerInfo {
  std::string version;
  std::string build_date;
  std::string cluster_name;
  std::string cluster_id;
  std::string seal_type;        // "pkcs11"
  std::size_t max_json_depth = 32;
};

// The parts a request may reach, owned by the daemon and passed in explicitly.
struct Services {
  auth::TokenStore& tokens;
  auth::PolicyStore& policies;
  auth::CertRoleStore& cert_roles;
  engines::KvEngine& kv;
  ServerInfo info;
  // Brute-force defences (issue 6), owned by the daemon; null: off. The limiter acts in
  // VaultRouter::handle before any token lookup or login; the lockout in each login handler.
  RateLimiter* rate_limiter = nullptr;
  auth::LoginLockout* lockout = nullptr;
  // AppRole auth (auth/approle/*), owned by the daemon; null: its endpoints do not exist.
  auth::AppRoleStore* approle = nullptr;
  // Response wrapping (X-Vault-Wrap-TTL, sys/wrapping/*); null: refused with 400. Wrap TTLs
  // above max_wrapping_ttl seconds are refused with 400.
  engines::WrappingEngine* wrapping = nullptr;
  std::int64_t max_wrapping_ttl = 86400;
  // X-Coffer-Nonce on state-changing calls, checked and recorded before the handler runs; null:
  // a request carrying one is refused (it could not be honoured).
  auth::NonceGuard* nonces = nullptr;
};

struct Call;

class VaultRouter {
 public:
  // `audit` null: no audit device (cofferd warns). Otherwise every request except sys/health,
  // sys/seal-status and sys/leader (as in Vault) gets a request record, written before the
  // handler runs, and a response record, written before the response leaves; if either cannot
  // be written the request is refused with 503 (fail closed).
  explicit VaultRouter(Services services, audit::AuditLog* audit = nullptr)
      : s_(std::move(services)), audit_(audit) {}
  HttpResponse handle(HttpRequest& request);

 private:
  HttpResponse dispatch(Call& call);
  // `limited`: the refusal given before authentication (the rate limiter's 429, a request nonce's
  // 400/409), audited as the refusal instead of running anything.
  HttpResponse handle_audited(Call& call, std::optional<HttpResponse> limited);
  // 429 with Retry-After when the rate limiter refuses the request, else nullopt.
  std::optional<HttpResponse> rate_limited(const Call& call);
  // 400 for a bad X-Vault-Wrap-TTL, wrapping without the engine, or a non-root namespace.
  std::optional<HttpResponse> unsupported_request(const HttpRequest& req,
                                                  const Result<std::optional<std::int64_t>>& wrap_ttl);
  // Token lookup and ACL; a refusal response, or nullopt with call.caller and call.acl set.
  std::optional<HttpResponse> authenticate(Call& call);
  HttpResponse route_authenticated(Call& call);
  std::optional<HttpResponse> audit_hash(Call& call);

  Services s_;
  audit::AuditLog* audit_ = nullptr;
};

}  // namespace coffer::api
