#include "api/vault_router.h"

#include "api/request_nonce.h"
#include "api/routes.h"
#include "api/routes_wrapping.h"
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

// Vault's audit entries (AuditRequestEntry / AuditResponseEntry), built as audit::Records. Values
// are redacted by audit/ (HMAC unless allow-listed), so tokens and bodies go in as they are.
bool kv_path(Services& s, const Call& call) { return call.path.rfind(s.kv.mount(), 0) == 0; }

// The members a request's two records share, redacted once for both: "request" (its body parsed
// once) and the caller's "auth" block (token and accessor HMAC'd once).
Status audit_shared(Services& s, const Call& call, audit::Record& rec) {
  SecretJson r;
  r["id"] = js(call.request_id);
  r["operation"] = vault_operation(call.method);
  r["path"] = js(call.path);
  r["namespace"]["id"] = "root";
  r["remote_address"] = js(call.http.remote_address);
  r["remote_port"] = call.http.remote_port;
  r["client_certificate_sha256"] = js(call.http.peer.fingerprint_sha256_hex);
  if (kv_path(s, call)) {
    r["mount_point"] = js(s.kv.mount());
    r["mount_type"] = "kv";
  }
  if (!call.token.empty()) r["client_token"] = js(call.token);
  if (call.wrap_ttl) r["wrap_ttl"] = *call.wrap_ttl;  // X-Vault-Wrap-TTL in seconds, as Vault records it
  if (!call.http.body.empty()) {
    auto parsed = parse_object_body(call.http.body, s.info.max_json_depth);
    if (parsed.ok()) {
      r["data"] = std::move(parsed).value();
    } else {
      r["data"] = js(call.http.body.view(crypto::reveal()));  // HMAC'd as one string
    }
  }
  COFFER_RETURN_IF_ERROR(rec.set("request", r));
  if (!call.caller) return Status::Ok();
  const auth::TokenInfo& c = *call.caller;
  SecretJson a;
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
  return rec.set("auth", a);
}

SecretJson response_json(const HttpResponse& response) {
  if (response.body.empty()) return SecretJson();
  return SecretJson::parse(response.body.view(crypto::reveal()), nullptr, false);
}

// "type", and what the response says: "error" (a refused request's records both carry it) and,
// in the response record, "response". `body` is response_json(*response); the response record
// moves its parts out, so it is built last.
Status audit_outcome(Services& s, const Call& call, const HttpResponse* response, SecretJson& body,
                     bool is_response, audit::Record& rec) {
  COFFER_RETURN_IF_ERROR(rec.set("type", SecretJson(is_response ? "response" : "request")));
  if (response == nullptr) return Status::Ok();
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
  if (!call.audit_error.empty()) error = call.audit_error;
  if (response->status >= 400) {
    COFFER_RETURN_IF_ERROR(
        rec.set("error", SecretJson(js(error.empty() ? "status " + std::to_string(response->status) : error))));
  }
  if (!is_response) return Status::Ok();
  SecretJson out;
  out["status_code"] = response->status;
  if (kv_path(s, call)) out["mount_type"] = "kv";
  if (body.is_object()) {
    for (const char* part : {"data", "auth", "wrap_info"}) {
      if (auto it = body.find(part); it != body.end() && !it->is_null()) out[part] = std::move(*it);
    }
  }
  return rec.set("response", out);
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
  // The wrap TTL goes along: a rule's min/max_wrapping_ttl refuses what it does not allow.
  return call.acl != nullptr && call.acl->allows(path, capability, auth::AccessRequest{call.wrap_ttl, nullptr});
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
  auto request_id = crypto::random_request_id();
  if (!request_id.ok()) return status_response(request_id.status());

  constexpr std::string_view kPrefix = "/v1/";
  if (std::string_view(req.path).substr(0, kPrefix.size()) != kPrefix) return error_response(404, {});
  auto method = normalise_method(req);
  if (!method.has_value()) return unsupported_operation();
  auto wrap_ttl = parse_wrap_ttl(req, s_.max_wrapping_ttl);

  Call call{req, std::move(*request_id), std::move(*method), req.path.substr(kPrefix.size()), presented_token(req),
            std::nullopt, nullptr};
  call.wrap_ttl = wrap_ttl.ok() ? *wrap_ttl : std::nullopt;
  // Before any token lookup, login or body parsing: a flood must cost as little as possible.
  std::optional<HttpResponse> limited = rate_limited(call);
  // Then what coffer cannot do, refused (and audited) like any other refusal.
  if (!limited) limited = unsupported_request(req, wrap_ttl);
  // Then an X-Coffer-Nonce is recorded (or the replay refused) before anything can change state.
  if (!limited) limited = request_nonce_refusal(s_.nonces, call);
  if (audit_ == nullptr || !audited_path(call.path)) {
    return limited ? std::move(*limited) : wrap_response(s_, call, dispatch(call));
  }
  return handle_audited(call, std::move(limited));
}

// Fail closed on what a Vault client may ask for and coffer cannot do: answering a wrapping
// request it cannot honour with the plaintext response, or serving a namespace from the root
// one, would give the client something other than what it asked for.
std::optional<HttpResponse> VaultRouter::unsupported_request(const HttpRequest& req,
                                                             const Result<std::optional<std::int64_t>>& wrap_ttl) {
  if (!wrap_ttl.ok()) return error_response(400, {wrap_ttl.status().message()});
  if (*wrap_ttl && s_.wrapping == nullptr) {
    return error_response(400, {"response wrapping is not available on this server"});
  }
  if (const auto* ns = req.header("x-vault-namespace"); ns != nullptr) {
    const std::string_view n(ns->data(), ns->size());
    if (!n.empty() && n != "root" && n != "root/" && n != "/") {
      return error_response(400, {"namespaces are not supported: only the root namespace exists"});
    }
  }
  return std::nullopt;
}

std::optional<HttpResponse> VaultRouter::rate_limited(const Call& call) {
  if (s_.rate_limiter == nullptr) return std::nullopt;
  const auto cls = rate_class(call.method, call.path);
  if (!cls) return std::nullopt;
  const RateDecision d =
      s_.rate_limiter->acquire(*cls, call.http.peer.fingerprint_sha256_hex, call.http.remote_address);
  if (d.allowed) return std::nullopt;
  // Per request at debug only: a flood must not flood the journal too (cofferd logs a summary
  // of refusals once a minute, and the audit log has each one).
  if (log_enabled(LogLevel::debug)) {
    log_debug("request " + call.request_id + " (" + call.method + " " + call.path + ") from " +
              call.http.remote_address + " refused: " + rate_class_name(*cls) + " rate limit per " + d.refused_by);
  }
  // Vault's quota error (ErrRateLimitQuotaExceeded, "request path %q: ...").
  HttpResponse r = error_response(429, {"request path \"" + call.path + "\": rate limit quota exceeded"});
  r.headers.emplace_back("Retry-After", std::to_string(d.retry_after_seconds));
  return r;
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
HttpResponse VaultRouter::handle_audited(Call& call, std::optional<HttpResponse> limited) {
  const bool login =
      call.path == "auth/cert/login" || call.path == "auth" || call.path == "auth/approle/login";
  std::optional<HttpResponse> refusal = std::move(limited);
  if (!refusal && !login) refusal = authenticate(call);
  audit::Record request = audit_->record();
  if (Status st = audit_shared(s_, call, request); !st.ok()) return audit_refused(call, st);
  audit::Record response_record = request;  // the shared members, redacted once
  if (refusal) {
    // Nothing runs: both records are known now and go out together, in one write.
    SecretJson body = response_json(*refusal);
    Status st = audit_outcome(s_, call, &*refusal, body, false, request);
    if (st.ok()) st = audit_outcome(s_, call, &*refusal, body, true, response_record);
    if (st.ok()) st = audit_->log(std::move(request), std::move(response_record));
    if (!st.ok()) return audit_refused(call, st);
    return std::move(*refusal);
  }
  SecretJson no_body;
  Status st = audit_outcome(s_, call, nullptr, no_body, false, request);
  if (st.ok()) st = audit_->log(std::move(request));
  if (!st.ok()) return audit_refused(call, st);
  HttpResponse response;
  if (login) {
    auto r = route_login(s_, call);
    response = r ? std::move(*r) : error_response(404, {});
  } else {
    response = route_authenticated(call);
  }
  response = wrap_response(s_, call, std::move(response));  // the record shows only wrap_info then
  SecretJson body = response_json(response);
  st = audit_outcome(s_, call, &response, body, true, response_record);
  if (st.ok()) st = audit_->log(std::move(response_record));
  if (!st.ok()) return audit_refused(call, st);
  return response;
}

std::optional<HttpResponse> VaultRouter::authenticate(Call& call) {
  if (call.method == "HEAD") return unsupported_operation();
  // sys/wrapping/{lookup,unwrap,rewrap} may name the wrapping token as the caller's token, and an
  // unusable one gets Vault's 400 from the handler, not a 403 here (no caller, no ACL then).
  const bool wrapping_token = wrapping_token_path(call.path);
  if (call.token.empty()) return wrapping_token ? std::nullopt : std::optional<HttpResponse>(permission_denied());
  auto caller = s_.tokens.lookup(call.token, call.http.peer.fingerprint_sha256_hex);
  if (!caller.ok()) {
    if (caller.status().code() == Code::permission_denied) {
      if (log_enabled(LogLevel::debug)) {
        log_debug("request " + call.request_id + " refused: " + caller.status().message());
      }
      if (wrapping_token) return std::nullopt;
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
  // Wrapping tokens are confined to sys/wrapping/, and policies may require wrapping.
  if (auto r = wrapping_refusal(call)) return std::move(*r);
  if (auto r = route_wrapping(s_, call, audit_)) return std::move(*r);
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
