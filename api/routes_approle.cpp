// auth/approle/ endpoints (vault-api.md §1.6): the login (unauthenticated, like cert login) and
// the administration of roles and secret IDs, each ACL-checked on its exact path:
//   LIST auth/approle/role                                   list
//   GET|POST|DELETE auth/approle/role/:name                  read | create/update | delete
//   GET|POST auth/approle/role/:name/role-id                 read | update
//   POST|LIST auth/approle/role/:name/secret-id              update | list (accessors)
//   POST auth/approle/role/:name/secret-id/lookup            update   {secret_id}
//   POST|DELETE auth/approle/role/:name/secret-id/destroy    update | delete   {secret_id}
//   POST auth/approle/role/:name/secret-id-accessor/lookup   update   {secret_id_accessor}
//   POST|DELETE .../secret-id-accessor/destroy               update | delete   {secret_id_accessor}
//   POST auth/approle/login                                  (no token)   {role_id, secret_id}
// A secret ID leaves only in the HTTP body of the response that generates it (SecretJson, wiped);
// logs name its accessor; the audit log HMACs it like every value that is not allow-listed.
#include "api/routes.h"
#include "auth/approle.h"
#include "common/log.h"

namespace coffer::api {

using auth::Capability;

namespace {

constexpr std::string_view kRoles = "auth/approle/role";

HttpResponse invalid_login() { return error_response(400, {std::string(auth::kInvalidRoleOrSecretId)}); }

std::string_view trim_view(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// The string at `key`, viewed in place (it may be a credential: no copy leaves the wiped body).
// "" when absent or null; false when of another type.
bool string_at(const SecretJson& body, const char* key, std::string_view& out) {
  out = {};
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  const auto& v = it->get_ref<const crypto::SecretString&>();
  out = trim_view(std::string_view(v.data(), v.size()));
  return true;
}

// A role_id that could be one (what AppRoleStore accepts when it is set): short, no spaces or
// control characters. Only such a role_id becomes a lockout key, and so reaches the logs.
bool role_id_shaped(std::string_view id) {
  if (id.empty() || id.size() > 256) return false;
  for (unsigned char c : id) {
    if (c < 0x21 || c == 0x7f) return false;
  }
  return true;
}

HttpResponse data_response(const Call& call, const nlohmann::json& data) {
  SecretJson e = envelope(call.request_id);
  e["data"] = SecretJson::parse(data.dump());
  return json_response(200, e);
}

HttpResponse list_response(const Call& call, const std::vector<std::string>& keys) {
  if (keys.empty()) return error_response(404, {});
  SecretJson e = envelope(call.request_id);
  e["data"] = SecretJson{{"keys", string_array(keys)}};
  return json_response(200, e);
}

// The body as plain JSON, for administrative bodies that carry no credential.
std::optional<nlohmann::json> plain_body(Services& s, Call& call, HttpResponse& err) {
  auto body = body_object(s, call, err);
  if (!body) return std::nullopt;
  return nlohmann::json::parse(body->dump());
}

HttpResponse role_endpoint(Services& s, Call& call, const std::string& name) {
  auth::AppRoleStore& store = *s.approle;
  const std::string& p = call.path;
  if (call.method == "GET") {
    if (!allowed(call, p, Capability::read)) return permission_denied();
    auto doc = store.read_role(name);
    if (!doc.ok()) return status_response(doc.status());
    return data_response(call, *doc);
  }
  if (call.method == "PUT") {
    HttpResponse err;
    auto body = plain_body(s, call, err);
    if (!body) return err;
    auto existing = store.get_role(name);
    if (!existing.ok() && existing.status().code() != Code::not_found) return status_response(existing.status());
    if (!allowed(call, p, existing.ok() ? Capability::update : Capability::create)) return permission_denied();
    if (Status st = store.write_role(name, *body); !st.ok()) return status_response(st);
    log_info(std::string("approle: role ") + (existing.ok() ? "updated" : "created") + ": " + name);
    return no_content();
  }
  if (call.method == "DELETE") {
    if (!allowed(call, p, Capability::delete_)) return permission_denied();
    if (Status st = store.delete_role(name); !st.ok()) return status_response(st);
    log_info("approle: role deleted (with its secret IDs): " + name);
    return no_content();
  }
  return unsupported_operation();
}

HttpResponse role_id_endpoint(Services& s, Call& call, const std::string& name) {
  auth::AppRoleStore& store = *s.approle;
  if (call.method == "GET") {
    if (!allowed(call, call.path, Capability::read)) return permission_denied();
    auto role = store.get_role(name);
    if (!role.ok()) return status_response(role.status());
    return data_response(call, nlohmann::json{{"role_id", role->role_id}});
  }
  if (call.method == "PUT") {
    if (!allowed(call, call.path, Capability::update)) return permission_denied();
    HttpResponse err;
    auto body = body_object(s, call, err);
    if (!body) return err;
    std::string_view role_id;
    if (!string_at(*body, "role_id", role_id)) return error_response(400, {"\"role_id\" must be a string"});
    if (role_id.empty()) return error_response(400, {"missing role_id"});
    if (Status st = store.set_role_id(name, role_id); !st.ok()) return status_response(st);
    log_info("approle: role_id of role " + name + " changed");
    return no_content();
  }
  return unsupported_operation();
}

HttpResponse secret_id_endpoint(Services& s, Call& call, const std::string& name) {
  auth::AppRoleStore& store = *s.approle;
  if (call.method == "LIST") {
    std::string path = call.path;
    if (path.back() != '/') path += '/';
    if (!allowed(call, path, Capability::list)) return permission_denied();
    auto accessors = store.list_secret_id_accessors(name);
    if (!accessors.ok()) return status_response(accessors.status());
    return list_response(call, *accessors);
  }
  if (call.method != "PUT") return unsupported_operation();
  if (call.path.back() == '/') return unsupported_operation();
  if (!allowed(call, call.path, Capability::update)) return permission_denied();
  HttpResponse err;
  auto body = plain_body(s, call, err);
  if (!body) return err;
  auto generated = store.generate_secret_id(name, *body);
  if (!generated.ok()) return status_response(generated.status());
  log_info("approle: secret ID generated for role " + name + ": secret_id_accessor " + generated->accessor +
           ", ttl " + std::to_string(generated->ttl) + "s, num_uses " + std::to_string(generated->num_uses));
  SecretJson e = envelope(call.request_id);
  SecretJson& d = e["data"];
  d["secret_id"] = js(generated->secret_id.view(crypto::reveal()));
  d["secret_id_accessor"] = js(generated->accessor);
  d["secret_id_ttl"] = generated->ttl;
  d["secret_id_num_uses"] = generated->num_uses;
  return json_response(200, e);
}

// secret-id/{lookup,destroy} and secret-id-accessor/{lookup,destroy}.
HttpResponse secret_id_admin(Services& s, Call& call, const std::string& name, bool by_accessor, bool destroy) {
  auth::AppRoleStore& store = *s.approle;
  Capability cap = Capability::update;
  if (call.method == "DELETE" && destroy) {
    cap = Capability::delete_;
  } else if (call.method != "PUT") {
    return unsupported_operation();
  }
  if (!allowed(call, call.path, cap)) return permission_denied();
  HttpResponse err;
  auto body = body_object(s, call, err);
  if (!body) return err;
  const char* key = by_accessor ? "secret_id_accessor" : "secret_id";
  std::string_view value;
  if (!string_at(*body, key, value)) return error_response(400, {std::string("\"") + key + "\" must be a string"});
  if (value.empty()) return error_response(400, {std::string("missing ") + key});
  // Vault's message for an unknown accessor (404 since Vault 1.9). An unknown secret ID gets a
  // bare 404: its message must not echo the secret ID.
  const auto unknown_accessor = [&value] {
    return error_response(404,
                          {"failed to find accessor entry for secret_id_accessor: \"" + std::string(value) + "\""});
  };
  if (destroy) {
    auto destroyed = by_accessor ? store.destroy_secret_id_accessor(name, value) : store.destroy_secret_id(name, value);
    if (!destroyed.ok()) return status_response(destroyed.status());
    if (!*destroyed && by_accessor) return unknown_accessor();
    if (*destroyed) {
      log_info("approle: secret ID of role " + name + " destroyed" +
               (by_accessor ? " (secret_id_accessor " + std::string(value) + ")" : std::string()));
    }
    return no_content();
  }
  auto found = by_accessor ? store.lookup_secret_id_accessor(name, value) : store.lookup_secret_id(name, value);
  if (!found.ok()) return status_response(found.status());
  if (!*found) return by_accessor ? unknown_accessor() : error_response(404, {});
  return data_response(call, **found);
}

}  // namespace

std::optional<HttpResponse> route_approle_login(Services& s, Call& call) {
  if (call.path != "auth/approle/login" || s.approle == nullptr) return std::nullopt;
  if (call.method != "PUT") return unsupported_operation();
  HttpResponse err;
  auto body = body_object(s, call, err);
  if (!body) return err;
  std::string_view role_id, secret_id;
  if (!string_at(*body, "role_id", role_id) || !string_at(*body, "secret_id", secret_id)) {
    return error_response(400, {"\"role_id\" and \"secret_id\" must be strings"});
  }
  if (role_id.empty()) return error_response(400, {"missing role_id"});
  if (!role_id_shaped(role_id)) {
    if (log_enabled(LogLevel::debug)) {
      log_debug("approle login refused from " + call.http.remote_address + ": a role_id no role can have");
    }
    return invalid_login();
  }

  // Lockout per role_id (auth/login_lockout.h), whether or not a role has it: locking only
  // existing role_ids would tell a guesser which ones exist.
  const std::string lockout_key = "approle:" + std::string(role_id);
  std::string locked;
  if (s.lockout != nullptr) {
    if (Status st = s.lockout->check(lockout_key); !st.ok()) locked = st.message();
  }
  auth::AppRoleLoginRequest request{role_id, secret_id, call.http.remote_address,
                                    call.http.peer.fingerprint_sha256_hex, !locked.empty()};
  auto result = s.approle->login(request);
  if (!result.ok()) {
    log_error("approle login failed (request " + call.request_id + "): " + result.status().to_string());
    return status_response(result.status());
  }
  const std::string role = result->role_name.empty() ? std::string("(unknown role_id)") : result->role_name;
  switch (result->outcome) {
    case auth::AppRoleLoginOutcome::issued: {
      if (s.lockout != nullptr) s.lockout->record_success(lockout_key);
      const auth::IssuedToken& t = *result->token;
      log_info("approle login: role " + role +
               (result->secret_id_accessor.empty() ? "" : ", secret_id_accessor " + result->secret_id_accessor) +
               ", token accessor " + t.accessor);
      return auth_response(call, t.token.view(crypto::reveal()), t.info);
    }
    case auth::AppRoleLoginOutcome::replayed: {
      const std::string what = "secret ID replayed: role \"" + role + "\", secret_id_accessor " +
                               result->secret_id_accessor + ", " + std::to_string(result->revoked_tokens) +
                               " token(s) revoked";
      // The one line an operator must act on (docs/operator-guide.md, "Replay alert"). Never the
      // secret ID itself: its accessor names it.
      log_warning("approle: " + what + " (presented from " + call.http.remote_address + " with client certificate " +
                  call.http.peer.fingerprint_sha256_hex +
                  "). A used-up secret ID came back: it leaked, or a unit retried a login that had "
                  "succeeded. The tokens it produced are revoked; find who else held it and give the "
                  "unit a new secret ID.");
      if (!locked.empty()) {
        call.audit_error = "permission denied: " + locked + "; " + what;
        return permission_denied();
      }
      call.audit_error = std::string(auth::kInvalidRoleOrSecretId) + "; " + what;
      if (s.lockout != nullptr && s.lockout->record_failure(lockout_key)) {
        call.audit_error += "; lockout started: " + s.lockout->check(lockout_key).message();
      }
      return invalid_login();
    }
    case auth::AppRoleLoginOutcome::refused:
      break;
  }
  if (!locked.empty()) {
    // Vault answers a locked login with a plain permission denied, before the credentials.
    log_info("approle login refused: " + locked);
    call.audit_error = "permission denied: " + locked;
    return permission_denied();
  }
  if (log_enabled(LogLevel::debug)) {
    log_debug("approle login refused (request " + call.request_id + ", role " + role + ", from " +
              call.http.remote_address + "): " + result->reason);
  }
  if (s.lockout != nullptr && s.lockout->record_failure(lockout_key)) {
    call.audit_error = std::string(auth::kInvalidRoleOrSecretId) +
                       "; lockout started: " + s.lockout->check(lockout_key).message();
  }
  return invalid_login();
}

std::optional<HttpResponse> route_approle(Services& s, Call& call) {
  const std::string& p = call.path;
  if (s.approle == nullptr || p.rfind(kRoles, 0) != 0) return std::nullopt;
  if (p.size() == kRoles.size() || p == std::string(kRoles) + "/") {
    if (call.method != "LIST") return unsupported_operation();
    if (!allowed(call, std::string(kRoles) + "/", Capability::list)) return permission_denied();
    auto names = s.approle->list_roles();
    if (!names.ok()) return status_response(names.status());
    return list_response(call, *names);
  }
  if (p[kRoles.size()] != '/') return std::nullopt;
  const std::string rest = p.substr(kRoles.size() + 1);
  const auto slash = rest.find('/');
  const std::string name = rest.substr(0, slash);
  const std::string sub = slash == std::string::npos ? std::string() : rest.substr(slash + 1);
  if (sub.empty()) return role_endpoint(s, call, name);
  if (sub == "role-id") return role_id_endpoint(s, call, name);
  if (sub == "secret-id" || sub == "secret-id/") return secret_id_endpoint(s, call, name);
  if (sub == "secret-id/lookup") return secret_id_admin(s, call, name, false, false);
  if (sub == "secret-id/destroy") return secret_id_admin(s, call, name, false, true);
  if (sub == "secret-id-accessor/lookup") return secret_id_admin(s, call, name, true, false);
  if (sub == "secret-id-accessor/destroy") return secret_id_admin(s, call, name, true, true);
  return std::nullopt;
}

}  // namespace coffer::api
