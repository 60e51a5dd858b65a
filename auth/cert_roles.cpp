// Cert auth roles: body validation (Vault's field names and types), storage, and the login
// match (see cert_roles.h). Matching follows hashicorp/vault builtin/credential/cert
// path_login.go: verify the chain against a role's trusted certificates, then its constraints.
#include "auth/cert_roles.h"

#include <algorithm>
#include <cctype>

#include "auth/role_fields.h"

namespace coffer::auth {
namespace {

using nlohmann::json;

Status bad(const std::string& message) { return Error(Code::invalid_argument, message); }

Status refuse_restricting_fields(const json& body) {
  for (const char* key : {"allowed_names", "required_extensions", "token_bound_cidrs", "bound_cidrs"}) {
    COFFER_ASSIGN_OR_RETURN(auto v, string_list_field(body, key));
    if (v && !v->empty()) return bad(std::string("\"") + key + "\" is not supported by coffer");
  }
  for (const char* key : {"token_num_uses", "num_uses", "token_period", "period"}) {
    COFFER_ASSIGN_OR_RETURN(auto v, duration_field(body, key));
    if (v && *v != 0) return bad(std::string("\"") + key + "\" is not supported by coffer");
  }
  COFFER_ASSIGN_OR_RETURN(auto ocsp, bool_field(body, "ocsp_enabled"));
  if (ocsp && *ocsp) return bad("\"ocsp_enabled\" is not supported by coffer (use CRLs on the listener)");
  COFFER_ASSIGN_OR_RETURN(auto type, string_field(body, "token_type"));
  if (type && !type->empty() && *type != "default" && *type != "service" && *type != "default-service") {
    return bad("\"token_type\" \"" + *type + "\" is not supported by coffer (service tokens only)");
  }
  return Status::Ok();
}

Status apply_body(CertRole& role, const json& body) {
  COFFER_RETURN_IF_ERROR(refuse_restricting_fields(body));
  COFFER_ASSIGN_OR_RETURN(auto cert, string_field(body, "certificate"));
  if (cert) role.certificate = *cert;
  COFFER_ASSIGN_OR_RETURN(auto display, string_field(body, "display_name"));
  if (display) role.display_name = *display;

  struct ListField {
    const char* key;
    std::vector<std::string>* out;
  };
  for (const ListField& f : {ListField{"allowed_common_names", &role.allowed_common_names},
                             ListField{"allowed_dns_sans", &role.allowed_dns_sans},
                             ListField{"allowed_email_sans", &role.allowed_email_sans},
                             ListField{"allowed_uri_sans", &role.allowed_uri_sans},
                             ListField{"allowed_organizational_units", &role.allowed_organizational_units}}) {
    COFFER_ASSIGN_OR_RETURN(auto v, string_list_field(body, f.key));
    if (v) *f.out = std::move(*v);
  }

  COFFER_ASSIGN_OR_RETURN(auto policies, policies_field(body));
  if (policies) role.token_policies = std::move(*policies);

  struct TtlField {
    const char* current;
    const char* legacy;
    std::int64_t* out;
  };
  for (const TtlField& f : {TtlField{"token_ttl", "ttl", &role.token_ttl},
                            TtlField{"token_max_ttl", "max_ttl", &role.token_max_ttl},
                            TtlField{"token_explicit_max_ttl", nullptr, &role.token_explicit_max_ttl}}) {
    const char* key = pick_field(body, f.current, f.legacy);
    if (!key) return bad(std::string("cannot specify both \"") + f.current + "\" and \"" + f.legacy + "\"");
    COFFER_ASSIGN_OR_RETURN(auto v, duration_field(body, key));
    if (v) *f.out = *v;
  }
  COFFER_ASSIGN_OR_RETURN(auto no_default, bool_field(body, "token_no_default_policy"));
  if (no_default) role.token_no_default_policy = *no_default;

  if (role.token_max_ttl > 0 && role.token_ttl > role.token_max_ttl) {
    return bad("\"token_ttl\" should not be greater than \"token_max_ttl\"");
  }
  return Status::Ok();
}

json stored_json(const CertRole& r) {
  return json{{"name", r.name},
              {"certificate", r.certificate},
              {"display_name", r.display_name},
              {"allowed_common_names", r.allowed_common_names},
              {"allowed_dns_sans", r.allowed_dns_sans},
              {"allowed_email_sans", r.allowed_email_sans},
              {"allowed_uri_sans", r.allowed_uri_sans},
              {"allowed_organizational_units", r.allowed_organizational_units},
              {"token_policies", r.token_policies},
              {"token_ttl", r.token_ttl},
              {"token_max_ttl", r.token_max_ttl},
              {"token_explicit_max_ttl", r.token_explicit_max_ttl},
              {"token_no_default_policy", r.token_no_default_policy}};
}

// Builds a role from scratch or on top of `base`, and its anchors.
Result<std::pair<CertRole, crypto::TrustAnchors>> build_role(CertRole role, const json& body) {
  COFFER_RETURN_IF_ERROR(apply_body(role, body));
  if (trim_space(role.certificate).empty()) return bad("missing certificate");
  // Refuse a pasted private key: it would otherwise be stored (in clear) with the role.
  if (role.certificate.find("PRIVATE KEY") != std::string::npos) {
    return bad("\"certificate\" must contain certificates only, not a private key");
  }
  auto anchors = crypto::TrustAnchors::from_pem(role.certificate);
  if (!anchors.ok()) return bad("failed to parse certificate: " + anchors.status().message());
  if (role.display_name.empty()) role.display_name = role.name;
  return std::make_pair(std::move(role), std::move(anchors).value());
}

bool any_glob(const std::vector<std::string>& patterns, const std::vector<std::string>& values) {
  for (const auto& p : patterns) {
    for (const auto& v : values) {
      if (glob_match(p, v)) return true;
    }
  }
  return false;
}

bool constraints_match(const CertRole& r, const crypto::CertificateInfo& c) {
  if (!r.allowed_common_names.empty() && !any_glob(r.allowed_common_names, {c.common_name})) return false;
  if (!r.allowed_dns_sans.empty() && !any_glob(r.allowed_dns_sans, c.dns_sans)) return false;
  if (!r.allowed_email_sans.empty() && !any_glob(r.allowed_email_sans, c.email_sans)) return false;
  if (!r.allowed_uri_sans.empty() && !any_glob(r.allowed_uri_sans, c.uri_sans)) return false;
  if (!r.allowed_organizational_units.empty() &&
      !any_glob(r.allowed_organizational_units, c.organizational_units)) {
    return false;
  }
  return true;
}

}  // namespace

std::int64_t CertRole::effective_max_ttl() const {
  if (token_max_ttl > 0 && token_explicit_max_ttl > 0) return std::min(token_max_ttl, token_explicit_max_ttl);
  return token_max_ttl > 0 ? token_max_ttl : token_explicit_max_ttl;
}

bool glob_match(std::string_view pattern, std::string_view subj) {
  if (pattern.empty()) return subj.empty();
  if (pattern == "*") return true;
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto star = pattern.find('*', start);
    if (star == std::string_view::npos) {
      parts.push_back(pattern.substr(start));
      break;
    }
    parts.push_back(pattern.substr(start, star - start));
    start = star + 1;
  }
  if (parts.size() == 1) return subj == pattern;
  const bool leading = pattern.front() == '*';
  const bool trailing = pattern.back() == '*';
  const std::size_t end = parts.size() - 1;
  for (std::size_t i = 0; i < end; ++i) {
    const auto idx = subj.find(parts[i]);
    if (i == 0) {
      if (!leading && idx != 0) return false;
    } else if (idx == std::string_view::npos) {
      return false;
    }
    subj.remove_prefix(idx + parts[i].size());
  }
  return trailing || subj.ends_with(parts[end]);
}

Status CertRoleStore::validate_name(std::string_view name) { return validate_role_name(name); }

Result<std::unique_ptr<CertRoleStore>> CertRoleStore::load(storage::Storage& storage) {
  std::unique_ptr<CertRoleStore> store(new CertRoleStore(storage));
  COFFER_RETURN_IF_ERROR(store->reload());
  return store;
}

Status CertRoleStore::reload() {
  std::lock_guard write_lock(write_mu_);
  COFFER_ASSIGN_OR_RETURN(auto names, storage_.list_cert_roles());
  auto fresh = std::make_shared<Snapshot>();
  std::vector<std::string> warnings;
  for (const auto& name : names) {
    COFFER_ASSIGN_OR_RETURN(auto doc, storage_.get_cert_role(name));
    if (!doc) continue;  // deleted between list and get
    const json body = json::parse(doc->json, nullptr, /*allow_exceptions=*/false);
    CertRole base;
    base.name = name;
    auto built = body.is_object() ? build_role(std::move(base), body)
                                  : Result<std::pair<CertRole, crypto::TrustAnchors>>(
                                        bad("stored document is not a JSON object"));
    if (!built.ok()) {
      warnings.push_back("cert role \"" + name + "\" skipped: " + built.status().message());
      continue;
    }
    fresh->emplace(name, Entry{std::move(built->first), std::move(built->second)});
  }
  std::lock_guard lock(mu_);
  roles_ = std::move(fresh);
  warnings_ = std::move(warnings);
  return Status::Ok();
}

std::shared_ptr<const CertRoleStore::Snapshot> CertRoleStore::snapshot() const {
  std::lock_guard lock(mu_);
  return roles_;
}

Status CertRoleStore::write_text(std::string_view name, std::string_view json_body) {
  COFFER_ASSIGN_OR_RETURN(json body, parse_body_text(json_body));
  return write(name, body);
}

Status CertRoleStore::write(std::string_view name, const nlohmann::json& body) {
  COFFER_RETURN_IF_ERROR(validate_name(name));
  if (!body.is_object() && !body.is_null()) return bad("the request body must be a JSON object");
  std::lock_guard write_lock(write_mu_);
  const auto current = snapshot();
  CertRole base;
  if (auto it = current->find(name); it != current->end()) base = it->second.role;
  base.name = std::string(name);
  static const json kEmpty = json::object();
  COFFER_ASSIGN_OR_RETURN(auto built, build_role(std::move(base), body.is_null() ? kEmpty : body));
  COFFER_RETURN_IF_ERROR(storage_.put_cert_role(
      storage::NamedDocument{std::string(name), stored_json(built.first).dump()}));
  auto next = std::make_shared<Snapshot>(*current);
  next->erase(std::string(name));
  next->emplace(std::string(name), Entry{std::move(built.first), std::move(built.second)});
  std::lock_guard lock(mu_);
  roles_ = std::move(next);
  return Status::Ok();
}

Result<CertRole> CertRoleStore::get(std::string_view name) const {
  const auto roles = snapshot();
  auto it = roles->find(name);
  if (it == roles->end()) return Error(Code::not_found, "no cert role named \"" + std::string(name) + "\"");
  return it->second.role;
}

Result<nlohmann::json> CertRoleStore::read(std::string_view name) const {
  COFFER_ASSIGN_OR_RETURN(CertRole r, get(name));
  return json{{"certificate", r.certificate},
              {"display_name", r.display_name},
              {"allowed_names", json::array()},
              {"allowed_common_names", r.allowed_common_names},
              {"allowed_dns_sans", r.allowed_dns_sans},
              {"allowed_email_sans", r.allowed_email_sans},
              {"allowed_uri_sans", r.allowed_uri_sans},
              {"allowed_organizational_units", r.allowed_organizational_units},
              {"required_extensions", json::array()},
              {"allowed_metadata_extensions", json::array()},
              {"ocsp_enabled", false},
              {"ocsp_ca_certificates", ""},
              {"ocsp_servers_override", json::array()},
              {"ocsp_fail_open", false},
              {"ocsp_query_all_servers", false},
              {"token_bound_cidrs", json::array()},
              {"token_explicit_max_ttl", r.token_explicit_max_ttl},
              {"token_max_ttl", r.token_max_ttl},
              {"token_no_default_policy", r.token_no_default_policy},
              {"token_num_uses", 0},
              {"token_period", 0},
              {"token_policies", r.token_policies},
              {"token_type", "default"},
              {"token_ttl", r.token_ttl}};
}

Status CertRoleStore::remove(std::string_view name) {
  COFFER_RETURN_IF_ERROR(validate_name(name));
  std::lock_guard write_lock(write_mu_);
  COFFER_ASSIGN_OR_RETURN(bool deleted, storage_.delete_cert_role(std::string(name)));
  (void)deleted;
  const auto current = snapshot();
  auto next = std::make_shared<Snapshot>(*current);
  next->erase(std::string(name));
  std::lock_guard lock(mu_);
  roles_ = std::move(next);
  return Status::Ok();
}

std::vector<std::string> CertRoleStore::list() const {
  const auto roles = snapshot();
  std::vector<std::string> names;
  for (const auto& [name, entry] : *roles) names.push_back(name);
  return names;
}

Result<MatchedRole> CertRoleStore::match(const crypto::CertificateInfo& leaf, crypto::ByteView leaf_der,
                                         const std::vector<std::vector<std::uint8_t>>& chain_der,
                                         const std::optional<std::string>& role_name,
                                         std::string* why) const {
  const auto roles = snapshot();
  std::vector<const Entry*> candidates;
  if (role_name) {
    if (auto it = roles->find(*role_name); it != roles->end()) candidates.push_back(&it->second);
    else if (why) *why = "no cert role named \"" + *role_name + "\"";
  } else {
    for (const auto& [name, entry] : *roles) candidates.push_back(&entry);
  }
  auto note = [why](const std::string& role, const std::string& reason) {
    if (!why) return;
    if (!why->empty()) *why += "; ";
    *why += "role \"" + role + "\": " + reason;
  };

  // Constraints are cheap and chains are not: verify only the roles whose constraints accept
  // the certificate, in name order.
  for (const Entry* e : candidates) {
    if (!constraints_match(e->role, leaf)) continue;
    Status v = e->anchors.verify(leaf_der, chain_der);
    if (!v.ok()) {
      note(e->role.name, v.message());
      continue;
    }
    MatchedRole m;
    m.role = e->role;
    m.metadata = {{"cert_name", e->role.name},
                  {"common_name", leaf.common_name},
                  {"serial_number", leaf.serial_decimal},
                  {"subject_key_id", leaf.subject_key_id},
                  {"authority_key_id", leaf.authority_key_id}};
    return m;
  }
  // No match. Vault distinguishes "nothing trusts this chain" from "a chain verified but the
  // constraints refused it"; find out which, on this failure path only.
  for (const Entry* e : candidates) {
    if (constraints_match(e->role, leaf)) continue;
    if (e->anchors.verify(leaf_der, chain_der).ok()) {
      note(e->role.name, "the chain verifies but the certificate fails the role's constraints");
      return bad(std::string(kNoMatchingConstraints));
    }
    note(e->role.name, "the chain does not verify to this role's certificate");
  }
  return bad(std::string(kInvalidCertificate));
}

}  // namespace coffer::auth
