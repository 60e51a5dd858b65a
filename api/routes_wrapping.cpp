// Response wrapping at the HTTP layer (see routes_wrapping.h): Vault's wire shapes and rules around
// engines::WrappingEngine.
#include "api/routes_wrapping.h"

#include <ctime>

#include "common/duration.h"
#include "common/log.h"

namespace coffer::api {

using auth::Capability;

namespace {

constexpr std::string_view kLookup = "sys/wrapping/lookup";
constexpr std::string_view kUnwrap = "sys/wrapping/unwrap";
constexpr std::string_view kRewrap = "sys/wrapping/rewrap";
constexpr std::string_view kWrap = "sys/wrapping/wrap";

std::string rfc3339(std::int64_t unix_seconds) { return format_rfc3339(unix_seconds); }

HttpResponse invalid_wrapping_token() { return error_response(400, {engines::kInvalidWrappingToken}); }

// Vault's wrap_info (sdk/helper/wrapping.ResponseWrapInfo as the HTTP layer sends it).
HttpResponse wrap_info_response(const Call& call, const engines::WrapInfo& w) {
  SecretJson info;
  info["token"] = js(w.token.view(crypto::reveal()));
  info["accessor"] = js(w.accessor);
  info["ttl"] = w.ttl;
  info["creation_time"] = js(rfc3339(w.creation_time));
  info["creation_path"] = js(w.creation_path);
  if (!w.wrapped_accessor.empty()) info["wrapped_accessor"] = js(w.wrapped_accessor);
  SecretJson e = envelope(call.request_id);
  e["wrap_info"] = std::move(info);
  return json_response(200, e);
}

// Logs an internal failure in full and answers Vault's generic 500 (or the engine's 4xx).
HttpResponse engine_failure(Call& call, const Status& st) {
  if (st.code() == Code::invalid_argument) return error_response(400, {st.message()});
  log_error("request " + call.request_id + " " + call.path + " failed: " + st.to_string());
  call.audit_error = st.message();
  return status_response(st.code() == Code::data_loss ? Status(Code::internal, "") : st);
}

// An unwrap or rewrap of a token that is not (any more) a wrapping token. Vault's design intent:
// a wrapping token its recipient cannot use is an incident (someone else may have unwrapped it).
// The operator gets a warning naming the token by its audit HMAC (the form the audit log holds:
// `sys/audit-hash` or a grep finds the wrap and the earlier unwrap), never the token itself.
HttpResponse unusable_wrapping_token(Call& call, std::string_view token, const audit::AuditLog* audit,
                                     const char* what) {
  std::string ref = "an unknown wrapping token";
  if (audit != nullptr) {
    if (auto h = audit->hash(token); h.ok()) ref = "wrapping token " + *h;
  }
  log_warning("request " + call.request_id + ": " + what + " refused for " + ref + " from " +
              call.http.remote_address + " (client certificate sha256 " + call.http.peer.fingerprint_sha256_hex +
              "): already unwrapped, expired, or never issued. If its intended recipient did not unwrap it, "
              "treat the wrapped response as compromised and find who did in the audit log.");
  call.audit_error = std::string(engines::kInvalidWrappingToken) +
                     ": already unwrapped, expired, or never issued (possible interception of a wrapped response)";
  return invalid_wrapping_token();
}

// The wrapping token named in the body ("token"), if any. Vault's ValidateWrappingToken: a
// "token" that is not a non-empty string is a 400.
struct BodyToken {
  std::optional<std::string_view> token;  // points into the parsed body
  std::optional<HttpResponse> error;
};
BodyToken body_token(const SecretJson& body) {
  auto it = body.find("token");
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_string()) return {std::nullopt, error_response(400, {"could not decode token in request body"})};
  const auto& s = it->get_ref<const crypto::SecretString&>();
  if (s.empty()) return {std::nullopt, error_response(400, {"empty token in request body"})};
  return {std::string_view(s.data(), s.size()), std::nullopt};
}

// Which token an unwrap or rewrap is about: the body's "token" (presented by another, ordinary
// token with `update` on the path) or the caller's own token — never both, which would use the
// single-use token twice (vault-api.md §1.11). Sets `token` or returns the refusal.
std::optional<HttpResponse> select_wrapping_token(Call& call, const BodyToken& body, std::string_view& token) {
  const bool caller_is_wrapping = call.caller && engines::is_wrapping_token(*call.caller);
  if (body.token) {
    if (caller_is_wrapping) {
      return error_response(400, {"the wrapping token was given both as X-Vault-Token and as \"token\": give it "
                                  "once (as X-Vault-Token alone, or as \"token\" with a token of your own)"});
    }
    if (!call.caller) {
      if (call.token.empty()) return permission_denied();
      return error_response(403, {"permission denied", "invalid token"});
    }
    if (!allowed(call, call.path, Capability::update)) return permission_denied();
    token = *body.token;
    return std::nullopt;
  }
  if (call.token.empty()) {
    return error_response(400, {"missing wrapping token: send it as X-Vault-Token, or as \"token\" together with "
                                 "a token of your own"});
  }
  // An ordinary token of the caller's own wraps nothing: Vault's answer, and no incident.
  if (call.caller && !caller_is_wrapping) return invalid_wrapping_token();
  token = call.token;
  return std::nullopt;
}

HttpResponse lookup(Services& s, Call& call, const BodyToken& body) {
  const std::string_view token = body.token ? *body.token : call.token;
  if (token.empty()) return error_response(400, {"missing \"token\" value in input"});
  auto found = s.wrapping->lookup(token);
  if (!found.ok()) return engine_failure(call, found.status());
  SecretJson data;
  data["creation_path"] = js(found->creation_path);
  data["creation_time"] = js(rfc3339(found->creation_time));
  data["creation_ttl"] = found->creation_ttl;
  // sys/ responses repeat `data` at the top level (Vault's HTTPSysInjector).
  SecretJson e = envelope(call.request_id);
  for (const auto& [k, v] : data.items()) e[k] = v;
  e["data"] = std::move(data);
  return json_response(200, e);
}

HttpResponse unwrap(Services& s, Call& call, const BodyToken& body, const audit::AuditLog* audit) {
  std::string_view token;
  if (auto refused = select_wrapping_token(call, body, token)) return std::move(*refused);
  auto plain = s.wrapping->unwrap(token);
  if (!plain.ok()) {
    if (plain.status().code() == Code::invalid_argument) return unusable_wrapping_token(call, token, audit, "unwrap");
    return engine_failure(call, plain.status());
  }
  // The original response, byte for byte (Vault answers an unwrap with the stored HTTP response).
  HttpResponse r;
  r.status = 200;
  r.body = std::move(plain).value();
  return r;
}

HttpResponse rewrap(Services& s, Call& call, const BodyToken& body, const audit::AuditLog* audit) {
  std::string_view token;
  if (auto refused = select_wrapping_token(call, body, token)) return std::move(*refused);
  auto info = s.wrapping->rewrap(token);
  if (!info.ok()) {
    if (info.status().code() == Code::invalid_argument) return unusable_wrapping_token(call, token, audit, "rewrap");
    return engine_failure(call, info.status());
  }
  return wrap_info_response(call, *info);
}

}  // namespace

Result<std::optional<std::int64_t>> parse_wrap_ttl(const HttpRequest& req, std::int64_t max_seconds) {
  const crypto::SecretString* header = req.header("x-vault-wrap-ttl");
  if (header == nullptr || header->empty()) return std::optional<std::int64_t>();
  auto ttl = parse_duration(std::string_view(header->data(), header->size()));
  if (!ttl.ok()) {
    return Error(Code::invalid_argument,
                 "invalid X-Vault-Wrap-TTL: use seconds (\"60\") or a duration (\"60s\", \"5m\"): " +
                     ttl.status().message());
  }
  if (*ttl < 1) return Error(Code::invalid_argument, "X-Vault-Wrap-TTL must be at least 1s");
  if (*ttl > max_seconds) {
    return Error(Code::invalid_argument, "X-Vault-Wrap-TTL of " + std::to_string(*ttl) +
                                             "s exceeds the maximum wrapping TTL of " + std::to_string(max_seconds) +
                                             "s");
  }
  if (const auto* format = req.header("x-vault-wrap-format"); format != nullptr) {
    const std::string_view f(format->data(), format->size());
    if (!f.empty() && f != "token" && f != "uuid") {
      return Error(Code::invalid_argument, "X-Vault-Wrap-Format: coffer issues wrapping tokens only (format "
                                           "\"token\"), not signed JWTs");
    }
  }
  return std::optional<std::int64_t>(*ttl);
}

bool wrapping_token_path(const std::string& path) { return path == kLookup || path == kUnwrap || path == kRewrap; }

std::optional<HttpResponse> wrapping_refusal(Call& call) {
  if (!call.caller) return std::nullopt;
  if (engines::is_wrapping_token(*call.caller) && !wrapping_token_path(call.path)) {
    call.audit_error = "permission denied: a response-wrapping token can only be unwrapped, looked up or rewrapped";
    return permission_denied();
  }
  if (call.acl == nullptr || call.acl->is_root()) return std::nullopt;
  // The rule the handler's own check will consult (LIST paths with their trailing '/').
  const bool list = call.method == "LIST";
  std::string listed;  // a copy only when the path needs the '/'
  std::string_view path = call.path;
  if (list && (path.empty() || path.back() != '/')) {
    listed = call.path + '/';
    path = listed;
  }
  const auth::Acl::WrappingBounds bounds = call.acl->wrapping_bounds(path, list);
  std::string why;
  const std::string ttl = call.wrap_ttl ? std::to_string(*call.wrap_ttl) + "s" : std::string();
  if (bounds.min > 0 && (!call.wrap_ttl || *call.wrap_ttl < bounds.min)) {
    why = call.wrap_ttl ? "X-Vault-Wrap-TTL of " + ttl + " is below this path's min_wrapping_ttl of " +
                              std::to_string(bounds.min) + "s"
                        : "response wrapping is required on this path: send X-Vault-Wrap-TTL of at least " +
                              std::to_string(bounds.min) + "s (min_wrapping_ttl)";
  } else if (bounds.max > 0 && (!call.wrap_ttl || *call.wrap_ttl > bounds.max)) {
    why = call.wrap_ttl ? "X-Vault-Wrap-TTL of " + ttl + " exceeds this path's max_wrapping_ttl of " +
                              std::to_string(bounds.max) + "s"
                        : "response wrapping is required on this path: send X-Vault-Wrap-TTL of at most " +
                              std::to_string(bounds.max) + "s (max_wrapping_ttl)";
  }
  if (why.empty()) return std::nullopt;
  // Vault refuses these in the ACL check: 403 permission denied. The reason goes along, so a
  // client (or its operator) knows what to change.
  call.audit_error = "permission denied: " + why;
  return error_response(403, {"permission denied", why});
}

std::optional<HttpResponse> route_wrapping(Services& s, Call& call, const audit::AuditLog* audit) {
  if (call.path.rfind("sys/wrapping/", 0) != 0) return std::nullopt;
  const bool known = wrapping_token_path(call.path) || call.path == kWrap;
  if (!known) {
    if (call.acl == nullptr || !call.acl->is_root()) return permission_denied();
    return error_response(404, {"no handler for route \"" + call.path + "\""});
  }
  if (call.method != "PUT") return unsupported_operation();
  if (s.wrapping == nullptr) return error_response(400, {"response wrapping is not available on this server"});
  HttpResponse err;
  auto parsed = body_object(s, call, err);
  if (!parsed) return err;

  if (call.path == kWrap) {
    // An ordinary token (wrapping tokens never get here) with update on the path.
    if (!allowed(call, call.path, Capability::update)) return permission_denied();
    if (!call.wrap_ttl) return error_response(400, {"endpoint requires response wrapping to be used"});
    SecretJson e = envelope(call.request_id);
    e["data"] = std::move(*parsed);
    return json_response(200, e);  // wrap_response() seals it
  }
  BodyToken body = body_token(*parsed);
  if (body.error) return std::move(*body.error);
  if (call.path == kLookup) return lookup(s, call, body);  // unauthenticated, as in Vault
  if (call.path == kUnwrap) return unwrap(s, call, body, audit);
  return rewrap(s, call, body, audit);
}

HttpResponse wrap_response(Services& s, Call& call, HttpResponse response) {
  if (!call.wrap_ttl || response.status != 200 || response.body.empty()) return response;
  // The bare bodies of the status endpoints are not Vault logical responses: never wrapped.
  if (call.path == "sys/health" || call.path == "sys/seal-status" || call.path == "sys/leader") return response;
  const auto text = response.body.view(crypto::reveal());
  SecretJson body = SecretJson::parse(text.begin(), text.end(), nullptr, false);
  if (!body.is_object()) {
    // Every 200 with a body is a JSON object; refuse rather than hand out what was to be wrapped.
    log_error("request " + call.request_id + " " + call.path + ": the response to wrap is not a JSON object");
    return error_response(500, {"internal error"});
  }
  // Already a wrapping answer (rewrap): nothing more to wrap.
  if (auto it = body.find("wrap_info"); it != body.end() && !it->is_null()) return response;
  std::string wrapped_accessor = engines::wrapped_accessor_of(body);
  std::string_view issued_token;  // into `body`: revoked if wrapping fails (it must not live on unseen)
  if (auto a = body.find("auth"); a != body.end() && a->is_object()) {
    if (auto t = a->find("client_token"); t != a->end() && t->is_string()) {
      const auto& v = t->get_ref<const crypto::SecretString&>();
      issued_token = std::string_view(v.data(), v.size());
    }
  }
  if (s.wrapping == nullptr) return error_response(500, {"internal error"});  // refused earlier; fail closed
  auto info = s.wrapping->wrap(response.body, call.path, *call.wrap_ttl, std::move(wrapped_accessor));
  if (!info.ok()) {
    log_error("request " + call.request_id + " " + call.path + ": wrapping the response failed: " +
              info.status().to_string());
    if (!issued_token.empty()) {
      auto revoked = s.tokens.revoke(issued_token);
      if (!revoked.ok()) log_error("request " + call.request_id + ": revoking the unwrapped token failed too");
    }
    call.audit_error = "wrapping the response failed: " + info.status().message();
    return status_response(info.status().code() == Code::invalid_argument ? info.status() : Status(Code::internal, ""));
  }
  return wrap_info_response(call, *info);
}

}  // namespace coffer::api
