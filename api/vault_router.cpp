#include "api/vault_router.h"

#include "api/routes.h"
#include "common/log.h"
#include "crypto/random.h"

namespace coffer::api {
namespace {

// X-Vault-Token takes precedence; otherwise "Authorization: Bearer <token>" (Vault's
// getTokenFromReq). Other Authorization schemes are ignored.
std::string_view presented_token(const HttpRequest& req) {
  if (const auto* t = req.header("x-vault-token"); t != nullptr && !t->empty()) {
    return std::string_view(t->data(), t->size());
  }
  if (const auto* a = req.header("authorization"); a != nullptr) {
    constexpr std::string_view kBearer = "Bearer ";
    const std::string_view value(a->data(), a->size());
    if (value.size() > kBearer.size() && value.substr(0, kBearer.size()) == kBearer) {
      std::string_view rest = value.substr(kBearer.size());
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      return rest;
    }
  }
  return {};
}

// GET ?list=true is LIST; POST is PUT (Vault treats them as synonyms).
std::optional<std::string> normalise_method(const HttpRequest& req) {
  const std::string& m = req.method;
  if (m == "GET") {
    if (const std::string* list = req.query_param("list"); list != nullptr && (*list == "true" || *list == "1")) {
      return std::string("LIST");
    }
    return m;
  }
  if (m == "POST" || m == "PUT") return std::string("PUT");
  if (m == "HEAD" || m == "DELETE" || m == "LIST") return m;
  return std::nullopt;
}

}  // namespace

HttpResponse permission_denied() { return error_response(403, {"permission denied"}); }
HttpResponse unsupported_operation() { return error_response(405, {"unsupported operation"}); }

bool allowed(const Call& call, std::string_view path, auth::Capability capability) {
  return call.acl != nullptr && call.acl->allows(path, capability);
}

std::optional<SecretJson> body_object(Services& s, Call& call, HttpResponse& error) {
  auto parsed = parse_object_body(call.http.body, s.info.max_json_depth);
  if (!parsed.ok()) {
    error = error_response(400, {parsed.status().message()});
    return std::nullopt;
  }
  return std::move(parsed).value();
}

HttpResponse VaultRouter::handle(HttpRequest& req) {
  auto request_id = crypto::random_uuid();
  if (!request_id.ok()) return status_response(request_id.status());

  constexpr std::string_view kPrefix = "/v1/";
  if (std::string_view(req.path).substr(0, kPrefix.size()) != kPrefix) return error_response(404, {});
  auto method = normalise_method(req);
  if (!method.has_value()) return unsupported_operation();

  Call call{req, *request_id, *method, req.path.substr(kPrefix.size()), presented_token(req), std::nullopt, nullptr};

  if (auto r = route_unauthenticated(s_, call)) return std::move(*r);
  if (call.method == "HEAD") return unsupported_operation();

  if (call.token.empty()) return permission_denied();
  auto caller = s_.tokens.lookup(call.token, req.peer.fingerprint_sha256_hex);
  if (!caller.ok()) {
    if (caller.status().code() == Code::permission_denied) {
      log_debug("request " + call.request_id + " refused: " + caller.status().message());
      return error_response(403, {"permission denied", "invalid token"});
    }
    log_error("request " + call.request_id + ": token lookup failed: " + caller.status().to_string());
    return status_response(caller.status());
  }
  call.caller = std::move(caller).value();
  auto acl = s_.policies.acl_for(call.caller->policies);
  if (!acl.ok()) {
    log_error("request " + call.request_id + ": policy evaluation failed: " + acl.status().to_string());
    return error_response(500, {"internal error"});
  }
  call.acl = std::move(acl).value();

  if (auto r = route_auth(s_, call)) return std::move(*r);
  if (auto r = route_sys(s_, call)) return std::move(*r);
  if (auto r = route_kv(s_, call)) return std::move(*r);

  // Unknown path: a caller without rights on it learns nothing (403); root learns it's absent.
  if (!call.acl->is_root()) return permission_denied();
  return error_response(404, {"no handler for route \"" + call.path + "\""});
}

}  // namespace coffer::api
