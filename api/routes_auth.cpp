// auth/ endpoints: TLS-certificate login (auth/cert/login and the short form auth {"role"}),
// cert role administration (auth/cert/certs/<name>), and the token lifecycle
// (auth/token/lookup-self, renew-self, revoke-self, lookup-accessor, revoke-accessor, create).
#include <algorithm>

#include "api/routes.h"
#include "common/duration.h"
#include "common/log.h"
#include "crypto/x509.h"

namespace coffer::api {

using auth::Capability;

namespace {

SecretJson meta_object(const std::map<std::string, std::string>& meta) {
  SecretJson m = SecretJson::object();
  for (const auto& [k, v] : meta) m[js(k)] = js(v);
  return m;
}

// Vault's "auth" block of a login / create / renew response. `token` is the caller's own token.
SecretJson auth_block(std::string_view token, const auth::TokenInfo& info) {
  SecretJson a;
  a["client_token"] = js(token);
  a["accessor"] = js(info.accessor);
  a["policies"] = string_array(info.policies);
  a["token_policies"] = string_array(info.policies);
  a["metadata"] = info.meta.empty() ? SecretJson(nullptr) : meta_object(info.meta);
  a["lease_duration"] = info.ttl;
  a["renewable"] = info.renewable;
  a["entity_id"] = "";
  a["token_type"] = "service";
  a["orphan"] = info.orphan;
  a["mfa_requirement"] = nullptr;
  a["num_uses"] = 0;
  return a;
}

}  // namespace

HttpResponse auth_response(const Call& call, std::string_view token, const auth::TokenInfo& info) {
  SecretJson e = envelope(call.request_id);
  e["auth"] = auth_block(token, info);
  return json_response(200, e);
}

namespace {

std::optional<std::string> optional_string(const SecretJson& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return std::string();  // present but wrong type: treated as invalid by callers
  const auto& v = it->get_ref<const crypto::SecretString&>();
  return std::string(v.data(), v.size());
}

// Accepts a duration string ("1h") or a number of seconds; -1 for "malformed".
std::int64_t duration_field(const SecretJson& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return 0;
  if (it->is_number_unsigned()) return static_cast<std::int64_t>(it->get<std::uint64_t>());
  if (it->is_number_integer()) return it->get<std::int64_t>() >= 0 ? it->get<std::int64_t>() : -1;
  if (it->is_string()) {
    const auto& v = it->get_ref<const crypto::SecretString&>();
    if (v.empty()) return 0;
    auto parsed = parse_duration(std::string_view(v.data(), v.size()));
    return parsed.ok() ? *parsed : -1;
  }
  return -1;
}

HttpResponse cert_login(Services& s, Call& call, std::optional<std::string> role_name) {
  const PeerCertificate& peer = call.http.peer;
  if (peer.leaf_der.empty()) return error_response(400, {"invalid certificate or no client certificate supplied"});
  // Lockout per identity: the certificate, whatever role it asks for (a wrong role name is a
  // failed guess too).
  const std::string lockout_key = "cert:" + peer.fingerprint_sha256_hex;
  if (s.lockout != nullptr) {
    if (Status locked = s.lockout->check(lockout_key); !locked.ok()) {
      // Vault answers a locked user with a plain permission denied (ErrPermissionDenied in
      // handleLoginRequest), before looking at the credentials.
      log_info("cert login refused: " + locked.message());
      call.audit_error = "permission denied: " + locked.message();
      return permission_denied();
    }
  }
  auto info = crypto::parse_certificate_der(peer.leaf_der);
  if (!info.ok()) return error_response(400, {"invalid certificate or no client certificate supplied"});
  auto matched = s.cert_roles.match(*info, peer.leaf_der, peer.chain_der, role_name);
  if (!matched.ok()) {
    log_info("cert login refused for CN=" + info->common_name + (role_name ? " role=" + *role_name : "") +
             ": " + matched.status().message());
    if (matched.status().code() == Code::invalid_argument || matched.status().code() == Code::not_found) {
      if (s.lockout != nullptr && s.lockout->record_failure(lockout_key)) {
        call.audit_error = "invalid certificate or no client certificate supplied; lockout started: " +
                           s.lockout->check(lockout_key).message();
      }
      return error_response(400, {"invalid certificate or no client certificate supplied"});
    }
    return status_response(matched.status());
  }
  const auth::CertRole& role = matched->role;
  auth::TokenSpec spec;
  if (!role.token_no_default_policy) spec.policies.push_back("default");
  spec.policies.insert(spec.policies.end(), role.token_policies.begin(), role.token_policies.end());
  spec.meta = matched->metadata;
  spec.display_name = "cert-" + (role.display_name.empty() ? role.name : role.display_name);
  spec.path = "auth/cert/login";
  spec.ttl = role.token_ttl;
  spec.max_ttl = role.effective_max_ttl();
  spec.renewable = true;
  spec.bound_cert_fingerprint = peer.fingerprint_sha256_hex;
  auto issued = s.tokens.create(spec);
  if (!issued.ok()) return status_response(issued.status());
  if (s.lockout != nullptr) s.lockout->record_success(lockout_key);
  log_info("cert login: role=" + role.name + " CN=" + info->common_name + " accessor=" + issued->accessor);
  return auth_response(call, issued->token.view(crypto::reveal()), issued->info);
}

// lookup-self / lookup-accessor: the token's data, built from plain JSON (no secrets in it) with
// `id` (the caller's own token, or "" by accessor) set as a secret string.
HttpResponse lookup_response(const Call& call, const auth::TokenInfo& info, std::string_view id) {
  SecretJson d = SecretJson::parse(auth::token_lookup_data(info, "").dump());
  d["id"] = js(id);
  SecretJson e = envelope(call.request_id);
  e["data"] = std::move(d);
  return json_response(200, e);
}

std::optional<HttpResponse> token_routes(Services& s, Call& call) {
  const std::string& p = call.path;
  if (p.rfind("auth/token/", 0) != 0) return std::nullopt;
  const auth::TokenInfo& me = *call.caller;

  if (p == "auth/token/lookup-self") {
    if (call.method != "GET" && call.method != "PUT") return unsupported_operation();
    if (!allowed(call, p, call.method == "GET" ? Capability::read : Capability::update)) return permission_denied();
    return lookup_response(call, me, call.token);
  }
  if (p == "auth/token/renew-self") {
    if (call.method != "PUT") return unsupported_operation();
    if (!allowed(call, p, Capability::update)) return permission_denied();
    HttpResponse err;
    auto body = body_object(s, call, err);
    if (!body) return err;
    const std::int64_t increment = duration_field(*body, "increment");
    if (increment < 0) return error_response(400, {"invalid increment"});
    // As Vault's AppRole renew: a deleted role's tokens live on until they expire, unrenewed.
    if (me.path == "auth/approle/login") {
      const auto it = me.meta.find("role_name");
      const std::string role = it != me.meta.end() ? it->second : std::string();
      auto found = s.approle != nullptr ? s.approle->get_role(role)
                                        : Result<auth::AppRole>(Error(Code::not_found, "no AppRole"));
      if (!found.ok()) {
        if (found.status().code() != Code::not_found) return status_response(found.status());
        const std::string message = "role \"" + role + "\" does not exist during renewal";
        call.audit_error = message;
        return error_response(400, {message});
      }
    }
    auto renewed = s.tokens.renew(call.token, increment);
    if (!renewed.ok()) return status_response(renewed.status());
    return auth_response(call, call.token, *renewed);
  }
  if (p == "auth/token/revoke-self") {
    if (call.method != "PUT") return unsupported_operation();
    if (!allowed(call, p, Capability::update)) return permission_denied();
    auto revoked = s.tokens.revoke(call.token);
    if (!revoked.ok()) return status_response(revoked.status());
    return no_content();
  }
  // By accessor (the handle audit records and login logs name): an operator looks a token up or
  // revokes it, with its children, without holding it. `update` on the path, as in Vault; the
  // default policy grants neither.
  if (p == "auth/token/lookup-accessor" || p == "auth/token/revoke-accessor") {
    if (call.method != "PUT") return unsupported_operation();
    if (!allowed(call, p, Capability::update)) return permission_denied();
    HttpResponse err;
    auto body = body_object(s, call, err);
    if (!body) return err;
    auto it = body->find("accessor");
    if (it == body->end() || !it->is_string() || it->get_ref<const crypto::SecretString&>().empty()) {
      return error_response(400, {"missing accessor"});
    }
    const auto& a = it->get_ref<const crypto::SecretString&>();
    const std::string accessor(a.data(), a.size());
    if (p == "auth/token/revoke-accessor") {
      auto revoked = s.tokens.revoke_accessor(accessor);
      if (!revoked.ok()) return status_response(revoked.status());
      log_info("token with accessor " + accessor + " revoked (" + std::to_string(*revoked) +
               " token(s) with its children) by accessor " + me.accessor);
      return no_content();
    }
    auto info = s.tokens.lookup_accessor(accessor);
    if (!info.ok()) return status_response(info.status());
    return lookup_response(call, *info, "");  // "id": "", as Vault: the token is not known
  }
  if (p == "auth/token/create" || p == "auth/token/create-orphan") {
    if (call.method != "PUT") return unsupported_operation();
    if (!allowed(call, p, Capability::update)) return permission_denied();
    HttpResponse err;
    auto body = body_object(s, call, err);
    if (!body) return err;
    auth::TokenSpec spec;
    if (auto it = body->find("policies"); it != body->end() && !it->is_null()) {
      if (!it->is_array()) return error_response(400, {"policies must be a list of strings"});
      for (const auto& v : *it) {
        if (!v.is_string()) return error_response(400, {"policies must be a list of strings"});
        const auto& name = v.get_ref<const crypto::SecretString&>();
        spec.policies.emplace_back(name.data(), name.size());
      }
    } else {
      spec.policies = me.policies;  // Vault: a child inherits the parent's policies
    }
    // Vault's SanitizePolicies: "default" is attached unless no_default_policy or a root token.
    bool no_default = false;
    if (auto it = body->find("no_default_policy"); it != body->end() && it->is_boolean()) no_default = it->get<bool>();
    const auto has = [&spec](const char* name) {
      return std::find(spec.policies.begin(), spec.policies.end(), name) != spec.policies.end();
    };
    if (no_default) {
      std::erase(spec.policies, std::string("default"));
    } else if (!has("default") && !has("root")) {
      spec.policies.insert(spec.policies.begin(), "default");
    }
    if (auto it = body->find("meta"); it != body->end() && !it->is_null()) {
      if (!it->is_object()) return error_response(400, {"meta must be a map of strings"});
      for (const auto& [k, v] : it->items()) {
        if (!v.is_string()) return error_response(400, {"meta must be a map of strings"});
        const auto& sv = v.get_ref<const crypto::SecretString&>();
        spec.meta[std::string(k.data(), k.size())] = std::string(sv.data(), sv.size());
      }
    }
    spec.display_name = "token";
    if (auto dn = optional_string(*body, "display_name"); dn && !dn->empty()) spec.display_name = "token-" + *dn;
    spec.ttl = duration_field(*body, "ttl");
    spec.max_ttl = duration_field(*body, "explicit_max_ttl");
    if (spec.ttl < 0 || spec.max_ttl < 0) return error_response(400, {"invalid ttl"});
    if (auto it = body->find("renewable"); it != body->end() && it->is_boolean()) spec.renewable = it->get<bool>();
    spec.path = "auth/token/" + std::string(p == "auth/token/create" ? "create" : "create-orphan");
    bool orphan = p == "auth/token/create-orphan";
    if (auto it = body->find("no_parent"); it != body->end() && it->is_boolean() && it->get<bool>()) orphan = true;
    if (orphan && !call.acl->allows(p, Capability::sudo)) {
      return error_response(403, {"root or sudo privileges required to create orphan token"});
    }
    // A child of a certificate-bound token stays bound to the same certificate.
    spec.bound_cert_fingerprint = me.bound_cert_fingerprint;
    auto issued = orphan ? s.tokens.create(spec) : s.tokens.create_child(me, spec);
    if (!issued.ok()) return status_response(issued.status());
    return auth_response(call, issued->token.view(crypto::reveal()), issued->info);
  }
  return std::nullopt;
}

std::optional<HttpResponse> cert_role_routes(Services& s, Call& call) {
  constexpr std::string_view kBase = "auth/cert/certs";
  const std::string& p = call.path;
  if (p.rfind(kBase, 0) != 0) return std::nullopt;
  if (p == kBase || p == std::string(kBase) + "/") {
    if (call.method != "LIST") return unsupported_operation();
    if (!allowed(call, std::string(kBase) + "/", Capability::list)) return permission_denied();
    const std::vector<std::string> names = s.cert_roles.list();
    if (names.empty()) return error_response(404, {});
    SecretJson e = envelope(call.request_id);
    e["data"] = SecretJson{{"keys", string_array(names)}};
    return json_response(200, e);
  }
  if (p[kBase.size()] != '/') return std::nullopt;
  const std::string name = p.substr(kBase.size() + 1);
  if (call.method == "GET") {
    if (!allowed(call, p, Capability::read)) return permission_denied();
    auto doc = s.cert_roles.read(name);
    if (!doc.ok()) return status_response(doc.status());
    SecretJson e = envelope(call.request_id);
    e["data"] = SecretJson::parse(doc->dump());
    return json_response(200, e);
  }
  if (call.method == "PUT") {
    HttpResponse err;
    auto body = body_object(s, call, err);
    if (!body) return err;
    auto existing = s.cert_roles.get(name);
    if (!existing.ok() && existing.status().code() != Code::not_found) return status_response(existing.status());
    if (!allowed(call, p, existing.ok() ? Capability::update : Capability::create)) return permission_denied();
    Status st = s.cert_roles.write(name, nlohmann::json::parse(body->dump()));
    if (!st.ok()) return status_response(st);
    return no_content();
  }
  if (call.method == "DELETE") {
    if (!allowed(call, p, Capability::delete_)) return permission_denied();
    Status st = s.cert_roles.remove(name);
    if (!st.ok()) return status_response(st);
    return no_content();
  }
  return unsupported_operation();
}

}  // namespace

std::optional<HttpResponse> route_login(Services& s, Call& call) {
  if (auto r = route_approle_login(s, call)) return r;
  if (call.path != "auth/cert/login" && call.path != "auth") return std::nullopt;
  if (call.method != "PUT") return unsupported_operation();
  HttpResponse err;
  auto body = body_object(s, call, err);
  if (!body) return err;
  if (call.path == "auth") {
    // The seed's short form: {"role": "..."} is required.
    auto role = optional_string(*body, "role");
    if (!role || role->empty()) return error_response(400, {"missing role"});
    return cert_login(s, call, role);
  }
  auto name = optional_string(*body, "name");
  if (name && name->empty()) name.reset();
  return cert_login(s, call, name);
}

std::optional<HttpResponse> route_auth(Services& s, Call& call) {
  if (call.path.rfind("auth/", 0) != 0) return std::nullopt;
  if (auto r = token_routes(s, call)) return r;
  if (auto r = cert_role_routes(s, call)) return r;
  if (auto r = route_approle(s, call)) return r;
  return std::nullopt;
}

}  // namespace coffer::api
