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

// Vault does not audit these (vault-api.md §1.14): health probes would flood the log.
bool audited_path(const std::string& path) {
  return path != "sys/health" && path != "sys/seal-status" && path != "sys/leader";
}

const char* vault_operation(const std::string& method) {
  if (method == "GET" || method == "HEAD") return "read";
  if (method == "LIST") return "list";
  if (method == "DELETE") return "delete";
  return "update";
}

// Vault's audit entry (AuditRequestEntry / AuditResponseEntry). Values are redacted by audit/
// (HMAC unless allow-listed), so tokens and bodies go in as they are.
SecretJson audit_entry(Services& s, const Call& call, const HttpResponse* response, bool is_response) {
  SecretJson e;
  e["type"] = is_response ? "response" : "request";
  SecretJson& r = e["request"];
  r["id"] = js(call.request_id);
  r["operation"] = vault_operation(call.method);
  r["path"] = js(call.path);
  r["namespace"]["id"] = "root";
  r["remote_address"] = js(call.http.remote_address);
  r["remote_port"] = call.http.remote_port;
  r["client_certificate_sha256"] = js(call.http.peer.fingerprint_sha256_hex);
  if (call.path.rfind(s.kv.mount(), 0) == 0) {
    r["mount_point"] = js(s.kv.mount());
    r["mount_type"] = "kv";
  }
  if (!call.token.empty()) r["client_token"] = js(call.token);
  if (!call.http.body.empty()) {
    auto parsed = parse_object_body(call.http.body, s.info.max_json_depth);
    if (parsed.ok()) {
      r["data"] = std::move(parsed).value();
    } else {
      r["data"] = js(call.http.body.view(crypto::reveal()));  // HMAC'd as one string
    }
  }
  if (call.caller) {
    const auth::TokenInfo& c = *call.caller;
    SecretJson& a = e["auth"];
    a["client_token"] = js(call.token);
    a["accessor"] = js(c.accessor);
    a["display_name"] = js(c.display_name);
    a["policies"] = string_array(c.policies);
    a["token_policies"] = string_array(c.policies);
    a["token_type"] = js(c.type);
    a["token_ttl"] = c.creation_ttl;
    a["token_issue_time"] = c.issue_time;
    SecretJson meta = SecretJson::object();
    for (const auto& [k, v] : c.meta) meta[js(k)] = js(v);
    a["metadata"] = std::move(meta);
  }
  if (response == nullptr) return e;
  SecretJson body = response->body.empty()
                        ? SecretJson()
                        : SecretJson::parse(response->body.view(crypto::reveal()), nullptr, false);
  std::string error;
  if (body.is_object()) {
    if (auto it = body.find("errors"); it != body.end() && it->is_array()) {
      for (const auto& m : *it) {
        if (!m.is_string()) continue;
        const auto& text = m.get_ref<const crypto::SecretString&>();
        if (!error.empty()) error += "; ";
        error.append(text.data(), text.size());
      }
    }
  }
  if (response->status >= 400) e["error"] = js(error.empty() ? "status " + std::to_string(response->status) : error);
  if (!is_response) return e;
  SecretJson& out = e["response"];
  out["status_code"] = response->status;
  if (r.contains("mount_type")) out["mount_type"] = "kv";
  if (body.is_object()) {
    if (auto it = body.find("data"); it != body.end() && !it->is_null()) out["data"] = *it;
    if (auto it = body.find("auth"); it != body.end() && !it->is_null()) out["auth"] = *it;
    if (auto it = body.find("wrap_info"); it != body.end() && !it->is_null()) out["wrap_info"] = *it;
  }
  return e;
}

HttpResponse audit_refused(const Call& call, const Status& st) {
  log_error("audit log unavailable, request " + call.request_id + " (" + call.method + " " + call.path +
            ") refused: " + st.message());
  return error_response(503, {"audit log unavailable: request refused"});
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
  // Fail closed on what a Vault client may ask for and coffer cannot do yet: answering a
  // wrapping request with the plaintext response, or serving a namespace from the root one,
  // would give the client something other than what it asked for.
  if (const auto* wrap = req.header("x-vault-wrap-ttl"); wrap != nullptr && !wrap->empty()) {
    return error_response(400, {"response wrapping (X-Vault-Wrap-TTL) is not supported by coffer yet"});
  }
  if (const auto* ns = req.header("x-vault-namespace"); ns != nullptr) {
    const std::string_view n(ns->data(), ns->size());
    if (!n.empty() && n != "root" && n != "root/" && n != "/") {
      return error_response(400, {"namespaces are not supported: only the root namespace exists"});
    }
  }

  Call call{req, *request_id, *method, req.path.substr(kPrefix.size()), presented_token(req), std::nullopt, nullptr};
  if (audit_ == nullptr || !audited_path(call.path)) return dispatch(call);
  return handle_audited(call);
}

HttpResponse VaultRouter::dispatch(Call& call) {
  if (auto r = route_unauthenticated(s_, call)) return std::move(*r);
  if (auto r = authenticate(call)) return std::move(*r);
  return route_authenticated(call);
}

// Request record (after authentication, so it names the caller; refusals included) -> handler
// -> response record -> response. Nothing from the handler leaves unless both records are in
// the kernel. A write that already changed state and then fails to be audited still returns 503
// (Vault does the same): the client must treat the outcome as unknown.
HttpResponse VaultRouter::handle_audited(Call& call) {
  const bool login = call.path == "auth/cert/login" || call.path == "auth";
  std::optional<HttpResponse> refusal;
  if (!login) refusal = authenticate(call);
  if (Status st = audit_->log(audit_entry(s_, call, refusal ? &*refusal : nullptr, false)); !st.ok()) {
    return audit_refused(call, st);
  }
  HttpResponse response;
  if (refusal) {
    response = std::move(*refusal);
  } else if (login) {
    auto r = route_login(s_, call);
    response = r ? std::move(*r) : error_response(404, {});
  } else {
    response = route_authenticated(call);
  }
  if (Status st = audit_->log(audit_entry(s_, call, &response, true)); !st.ok()) return audit_refused(call, st);
  return response;
}

std::optional<HttpResponse> VaultRouter::authenticate(Call& call) {
  if (call.method == "HEAD") return unsupported_operation();
  if (call.token.empty()) return permission_denied();
  auto caller = s_.tokens.lookup(call.token, call.http.peer.fingerprint_sha256_hex);
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
  return std::nullopt;
}

HttpResponse VaultRouter::route_authenticated(Call& call) {
  if (auto r = audit_hash(call)) return std::move(*r);
  if (auto r = route_auth(s_, call)) return std::move(*r);
  if (auto r = route_sys(s_, call)) return std::move(*r);
  if (auto r = route_kv(s_, call)) return std::move(*r);

  // Unknown path: a caller without rights on it learns nothing (403); root learns it's absent.
  if (!call.acl->is_root()) return permission_denied();
  return error_response(404, {"no handler for route \"" + call.path + "\""});
}

// sys/audit-hash/<device> {"input": "..."} -> {"hash": "hmac-sha256:..."} (sudo, like Vault).
std::optional<HttpResponse> VaultRouter::audit_hash(Call& call) {
  constexpr std::string_view kPath = "sys/audit-hash/";
  if (call.path.rfind(kPath, 0) != 0) return std::nullopt;
  if (call.method != "PUT") return unsupported_operation();
  if (!allowed(call, call.path, auth::Capability::sudo)) return permission_denied();
  if (audit_ == nullptr) return error_response(400, {"no audit device is configured"});
  HttpResponse err;
  auto body = body_object(s_, call, err);
  if (!body) return err;
  auto it = body->find("input");
  if (it == body->end() || !it->is_string()) return error_response(400, {"input must be a string"});
  const auto& input = it->get_ref<const crypto::SecretString&>();
  auto hash = audit_->hash(std::string_view(input.data(), input.size()));
  if (!hash.ok()) return status_response(hash.status());
  SecretJson e = envelope(call.request_id);
  e["data"] = SecretJson::object();
  e["data"]["hash"] = js(*hash);
  return json_response(200, e);
}

}  // namespace coffer::api
