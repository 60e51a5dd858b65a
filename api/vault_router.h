// VaultRouter: turns a typed HttpRequest into Vault's logical operation and response shape.
// Order for every request: method and path normalisation -> unauthenticated endpoints
// (sys/health, sys/seal-status, sys/leader, cert login) -> token lookup (bound-certificate
// check included) -> ACL check for the exact path and capability -> the handler. Anything that
// cannot be checked is refused (fail closed). The router never touches sqlite or the key
// protector: it only calls auth/, engines/ and audit/.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "api/http_types.h"
#include "audit/audit_log.h"
#include "auth/cert_roles.h"
#include "auth/policy_store.h"
#include "auth/token_store.h"
#include "engines/kv_engine.h"

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
  HttpResponse handle_audited(Call& call);
  // Token lookup and ACL; a refusal response, or nullopt with call.caller and call.acl set.
  std::optional<HttpResponse> authenticate(Call& call);
  HttpResponse route_authenticated(Call& call);
  std::optional<HttpResponse> audit_hash(Call& call);

  Services s_;
  audit::AuditLog* audit_ = nullptr;
};

}  // namespace coffer::api
