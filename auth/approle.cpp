// AppRole: role validation and storage, secret-ID generation and administration, and the
// atomic login (see approle.h). Field names, defaults and error messages follow hashicorp/vault
// builtin/credential/approle (path_role.go, path_login.go).
#include "auth/approle.h"

#include <algorithm>
#include <ctime>
#include <span>

#include "auth/cidr.h"
#include "auth/role_fields.h"
#include "common/duration.h"
#include "crypto/random.h"

namespace coffer::auth {
namespace {

using nlohmann::json;

// HMAC domains for secret IDs and their accessors: distinct from the token store's own
// ("coffer token v1", "coffer accessor v1"), so no hash of one kind can match another.
constexpr std::string_view kSecretIdDomain = "coffer approle secret-id v1";
constexpr std::string_view kSecretIdAccessorDomain = "coffer approle secret-id accessor v1";
constexpr std::size_t kMaxRoleId = 256;
constexpr std::size_t kMaxSecretId = 256;  // ours are 36 characters; anything long is not ours
constexpr std::size_t kMaxMetadataEntries = 64;
constexpr std::size_t kMaxMetadataKey = 128;
constexpr std::size_t kMaxMetadataValue = 512;

Status bad(const std::string& message) { return Error(Code::invalid_argument, message); }

std::string rfc3339(std::int64_t unix_seconds) { return format_rfc3339(unix_seconds); }

Status validate_role_id(std::string_view id) {
  if (id.empty()) return bad("missing role_id");
  if (id.size() > kMaxRoleId) return bad("role_id is longer than " + std::to_string(kMaxRoleId) + " characters");
  for (unsigned char c : id) {
    if (c < 0x21 || c == 0x7f) return bad("role_id must not contain spaces or control characters");
  }
  return Status::Ok();
}

// Fields that would restrict tokens in Vault but that coffer does not implement: refused when
// set, so an operator never believes a restriction is in force when it is not.
Status refuse_unsupported_fields(const json& body) {
  for (const char* key : {"token_bound_cidrs", "bound_cidrs"}) {
    COFFER_ASSIGN_OR_RETURN(auto v, string_list_field(body, key));
    if (v && !v->empty()) {
      return bad(std::string("\"") + key +
                 "\" is not supported by coffer: tokens are bound to the client certificate instead; "
                 "restrict where logins come from with \"secret_id_bound_cidrs\"");
    }
  }
  for (const char* key : {"token_num_uses"}) {
    COFFER_ASSIGN_OR_RETURN(auto v, int_field(body, key));
    if (v && *v != 0) {
      return bad(std::string("\"") + key + "\" is not supported by coffer (tokens with a use limit); use 0");
    }
  }
  for (const char* key : {"token_period", "period"}) {
    COFFER_ASSIGN_OR_RETURN(auto v, duration_field(body, key));
    if (v && *v != 0) return bad(std::string("\"") + key + "\" is not supported by coffer (periodic tokens)");
  }
  COFFER_ASSIGN_OR_RETURN(auto type, string_field(body, "token_type"));
  if (type && !type->empty() && *type != "default" && *type != "service" && *type != "default-service") {
    return bad("\"token_type\" \"" + *type + "\" is not supported by coffer (service tokens only)");
  }
  return Status::Ok();
}

Result<std::vector<std::string>> canonical_cidrs(const std::vector<std::string>& texts) {
  COFFER_ASSIGN_OR_RETURN(auto blocks, parse_cidrs(texts));
  std::vector<std::string> out;
  for (const auto& b : blocks) out.push_back(b.to_string());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Status apply_body(AppRole& role, const json& body) {
  COFFER_RETURN_IF_ERROR(refuse_unsupported_fields(body));
  COFFER_ASSIGN_OR_RETURN(auto bind, bool_field(body, "bind_secret_id"));
  if (bind) role.bind_secret_id = *bind;

  const char* cidr_key = pick_field(body, "secret_id_bound_cidrs", "bound_cidr_list");
  if (!cidr_key) return bad("cannot specify both \"secret_id_bound_cidrs\" and \"bound_cidr_list\"");
  COFFER_ASSIGN_OR_RETURN(auto cidrs, string_list_field(body, cidr_key));
  if (cidrs) {
    auto canonical = canonical_cidrs(*cidrs);
    if (!canonical.ok()) return bad("\"" + std::string(cidr_key) + "\": " + canonical.status().message());
    role.secret_id_bound_cidrs = std::move(canonical).value();
  }

  COFFER_ASSIGN_OR_RETURN(auto num_uses, int_field(body, "secret_id_num_uses"));
  if (num_uses) {
    if (*num_uses < 0) return bad("secret_id_num_uses cannot be negative");
    role.secret_id_num_uses = *num_uses;
  }
  COFFER_ASSIGN_OR_RETURN(auto secret_ttl, duration_field(body, "secret_id_ttl"));
  if (secret_ttl) role.secret_id_ttl = *secret_ttl;

  COFFER_ASSIGN_OR_RETURN(auto policies, policies_field(body));
  if (policies) role.token_policies = std::move(*policies);

  struct TtlField {
    const char* key;
    std::int64_t* out;
  };
  for (const TtlField& f : {TtlField{"token_ttl", &role.token_ttl}, TtlField{"token_max_ttl", &role.token_max_ttl},
                            TtlField{"token_explicit_max_ttl", &role.token_explicit_max_ttl}}) {
    COFFER_ASSIGN_OR_RETURN(auto v, duration_field(body, f.key));
    if (v) *f.out = *v;
  }
  COFFER_ASSIGN_OR_RETURN(auto no_default, bool_field(body, "token_no_default_policy"));
  if (no_default) role.token_no_default_policy = *no_default;

  if (role.token_max_ttl > 0 && role.token_ttl > role.token_max_ttl) {
    return bad("\"token_ttl\" should not be greater than \"token_max_ttl\"");
  }
  // Vault's rule: a role must demand something. Without a secret ID and without address
  // restrictions, knowing the role_id would be enough to log in.
  if (!role.bind_secret_id && role.secret_id_bound_cidrs.empty()) {
    return bad("at least one constraint should be enabled on the role: bind_secret_id, or secret_id_bound_cidrs");
  }
  return Status::Ok();
}

json stored_json(const AppRole& r) {
  return json{{"name", r.name},
              {"bind_secret_id", r.bind_secret_id},
              {"secret_id_bound_cidrs", r.secret_id_bound_cidrs},
              {"secret_id_num_uses", r.secret_id_num_uses},
              {"secret_id_ttl", r.secret_id_ttl},
              {"token_policies", r.token_policies},
              {"token_ttl", r.token_ttl},
              {"token_max_ttl", r.token_max_ttl},
              {"token_explicit_max_ttl", r.token_explicit_max_ttl},
              {"token_no_default_policy", r.token_no_default_policy}};
}

Result<AppRole> from_row(const storage::ApproleRoleRow& row) {
  const json j = json::parse(row.json, nullptr, /*allow_exceptions=*/false);
  auto corrupt = [&row] { return Error(Code::data_loss, "stored AppRole role \"" + row.name + "\" is unreadable"); };
  if (!j.is_object()) return corrupt();
  try {
    AppRole r;
    r.name = row.name;
    r.role_id = row.role_id;
    r.bind_secret_id = j.at("bind_secret_id").get<bool>();
    r.secret_id_bound_cidrs = j.at("secret_id_bound_cidrs").get<std::vector<std::string>>();
    r.secret_id_num_uses = j.at("secret_id_num_uses").get<std::int64_t>();
    r.secret_id_ttl = j.at("secret_id_ttl").get<std::int64_t>();
    r.token_policies = j.at("token_policies").get<std::vector<std::string>>();
    r.token_ttl = j.at("token_ttl").get<std::int64_t>();
    r.token_max_ttl = j.at("token_max_ttl").get<std::int64_t>();
    r.token_explicit_max_ttl = j.at("token_explicit_max_ttl").get<std::int64_t>();
    r.token_no_default_policy = j.at("token_no_default_policy").get<bool>();
    return r;
  } catch (const json::exception&) {
    return corrupt();
  }
}

// Vault's secret-ID metadata: a map of strings, given as a JSON object or (as hvac and the Vault
// CLI send it) as a string holding that JSON object, or as "k1=v1,k2=v2".
Result<std::map<std::string, std::string>> parse_metadata(const json& body) {
  std::map<std::string, std::string> out;
  auto it = body.find("metadata");
  if (it == body.end() || it->is_null()) return out;
  json obj = json::object();
  if (it->is_object()) {
    obj = *it;
  } else if (it->is_string()) {
    const std::string text = trim_space(it->get_ref<const std::string&>());
    if (text.empty()) return out;
    if (text.front() == '{') {
      obj = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (obj.is_discarded() || !obj.is_object()) return bad("failed to parse metadata: not a JSON object");
    } else {
      std::size_t start = 0;
      while (start <= text.size()) {
        auto comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size();
        const std::string pair = trim_space(std::string_view(text).substr(start, comma - start));
        start = comma + 1;
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        if (eq == std::string::npos || eq == 0) return bad("failed to parse metadata: expected key=value pairs");
        obj[pair.substr(0, eq)] = pair.substr(eq + 1);
      }
    }
  } else {
    return bad("\"metadata\" must be a map of strings");
  }
  if (obj.size() > kMaxMetadataEntries) {
    return bad("\"metadata\" has more than " + std::to_string(kMaxMetadataEntries) + " entries");
  }
  for (const auto& [k, v] : obj.items()) {
    if (!v.is_string()) return bad("\"metadata\" must be a map of strings");
    const std::string& s = v.get_ref<const std::string&>();
    if (k.empty() || k.size() > kMaxMetadataKey || s.size() > kMaxMetadataValue) {
      return bad("\"metadata\": keys must have 1 to " + std::to_string(kMaxMetadataKey) +
                 " characters, values at most " + std::to_string(kMaxMetadataValue));
    }
    out[k] = s;
  }
  return out;
}

// 128 bits from the CSPRNG, written as a UUID (8-4-4-4-12 hex digits) like Vault's secret IDs,
// but with every bit random (no version nibble).
Result<crypto::SecretBytes> new_secret_id() {
  crypto::SecretBytes raw(16);
  COFFER_RETURN_IF_ERROR(crypto::random_bytes(std::span<std::uint8_t>(raw.data(crypto::reveal()), raw.size())));
  static constexpr char kHex[] = "0123456789abcdef";
  crypto::SecretBytes out;
  out.reserve(36);
  const std::uint8_t* b = raw.data(crypto::reveal());
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(static_cast<std::uint8_t>(kHex[b[i] >> 4]));
    out.push_back(static_cast<std::uint8_t>(kHex[b[i] & 0xf]));
  }
  return out;
}

bool used_up(const storage::SecretIdRow& r) { return r.num_uses > 0 && r.uses_left <= 0; }

Result<std::vector<std::string>> string_array(const std::string& text, std::string_view what) {
  const json j = json::parse(text.empty() ? "[]" : text, nullptr, false);
  if (!j.is_array()) return Error(Code::data_loss, "stored secret ID has an unreadable " + std::string(what));
  std::vector<std::string> out;
  for (const auto& e : j) {
    if (!e.is_string()) return Error(Code::data_loss, "stored secret ID has an unreadable " + std::string(what));
    out.push_back(e.get<std::string>());
  }
  return out;
}

Result<std::map<std::string, std::string>> string_map(const std::string& text) {
  const json j = json::parse(text.empty() ? "{}" : text, nullptr, false);
  if (!j.is_object()) return Error(Code::data_loss, "stored secret ID has unreadable metadata");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return Error(Code::data_loss, "stored secret ID has unreadable metadata");
    out[k] = v.get<std::string>();
  }
  return out;
}

Result<json> secret_id_data(const storage::SecretIdRow& r) {
  COFFER_ASSIGN_OR_RETURN(auto cidrs, string_array(r.cidrs_json, "cidr_list"));
  COFFER_ASSIGN_OR_RETURN(auto meta, string_map(r.metadata_json));
  return json{{"secret_id_accessor", r.accessor},
              {"metadata", meta},
              {"cidr_list", cidrs},
              {"token_bound_cidrs", json::array()},
              {"secret_id_num_uses", r.num_uses > 0 ? r.uses_left : 0},
              {"secret_id_ttl", r.expires_at > 0 ? r.expires_at - r.created_at : 0},
              {"creation_time", rfc3339(r.created_at)},
              // Vault shows Go's zero time for a secret ID without expiry.
              {"expiration_time", r.expires_at > 0 ? rfc3339(r.expires_at) : std::string("0001-01-01T00:00:00Z")},
              {"last_updated_time", rfc3339(r.last_used_at > 0 ? r.last_used_at : r.created_at)}};
}

Status no_role(std::string_view name) { return bad("role \"" + std::string(name) + "\" does not exist"); }

}  // namespace

std::int64_t AppRole::effective_max_ttl() const {
  if (token_max_ttl > 0 && token_explicit_max_ttl > 0) return std::min(token_max_ttl, token_explicit_max_ttl);
  return token_max_ttl > 0 ? token_max_ttl : token_explicit_max_ttl;
}

Result<std::vector<std::uint8_t>> AppRoleStore::secret_id_hash(std::string_view secret_id) const {
  return tokens_.keyed_hash(kSecretIdDomain, secret_id);
}

Result<std::vector<std::uint8_t>> AppRoleStore::accessor_hash(std::string_view accessor) const {
  return tokens_.keyed_hash(kSecretIdAccessorDomain, accessor);
}

Result<std::optional<AppRole>> AppRoleStore::find_role(std::string_view name) const {
  COFFER_RETURN_IF_ERROR(validate_role_name(name));
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.get_approle_role(std::string(name)));
  if (!row) return std::optional<AppRole>();
  COFFER_ASSIGN_OR_RETURN(AppRole role, from_row(*row));
  return std::optional<AppRole>(std::move(role));
}

Result<AppRole> AppRoleStore::get_role(std::string_view name) const {
  COFFER_ASSIGN_OR_RETURN(auto role, find_role(name));
  if (!role) return Error(Code::not_found, "no AppRole role named \"" + std::string(name) + "\"");
  return std::move(*role);
}

Status AppRoleStore::write_role(std::string_view name, const json& body) {
  COFFER_RETURN_IF_ERROR(validate_role_name(name));
  if (!body.is_object() && !body.is_null()) return bad("the request body must be a JSON object");
  static const json kEmpty = json::object();
  const json& b = body.is_null() ? kEmpty : body;
  std::lock_guard lock(write_mu_);
  COFFER_ASSIGN_OR_RETURN(auto existing, find_role(name));
  AppRole role;
  if (existing) role = std::move(*existing);
  role.name = std::string(name);
  COFFER_RETURN_IF_ERROR(apply_body(role, b));
  COFFER_ASSIGN_OR_RETURN(auto given_id, string_field(b, "role_id"));
  if (given_id) {
    COFFER_RETURN_IF_ERROR(validate_role_id(*given_id));
    role.role_id = *given_id;
  } else if (role.role_id.empty()) {
    COFFER_ASSIGN_OR_RETURN(role.role_id, crypto::random_uuid());
  }
  return storage_.put_approle_role(storage::ApproleRoleRow{role.name, role.role_id, stored_json(role).dump()});
}

Result<json> AppRoleStore::read_role(std::string_view name) const {
  COFFER_ASSIGN_OR_RETURN(AppRole r, get_role(name));
  return json{{"bind_secret_id", r.bind_secret_id},
              {"local_secret_ids", false},
              {"secret_id_bound_cidrs", r.secret_id_bound_cidrs},
              {"secret_id_num_uses", r.secret_id_num_uses},
              {"secret_id_ttl", r.secret_id_ttl},
              {"token_bound_cidrs", json::array()},
              {"token_explicit_max_ttl", r.token_explicit_max_ttl},
              {"token_max_ttl", r.token_max_ttl},
              {"token_no_default_policy", r.token_no_default_policy},
              {"token_num_uses", 0},
              {"token_period", 0},
              {"token_policies", r.token_policies},
              {"policies", r.token_policies},
              {"token_ttl", r.token_ttl},
              {"token_type", "default"}};
}

Status AppRoleStore::delete_role(std::string_view name) {
  COFFER_RETURN_IF_ERROR(validate_role_name(name));
  std::lock_guard lock(write_mu_);
  COFFER_ASSIGN_OR_RETURN(bool deleted, storage_.delete_approle_role(std::string(name)));
  (void)deleted;
  return Status::Ok();
}

Result<std::vector<std::string>> AppRoleStore::list_roles() const { return storage_.list_approle_roles(); }

Status AppRoleStore::set_role_id(std::string_view name, std::string_view role_id) {
  COFFER_RETURN_IF_ERROR(validate_role_id(role_id));
  std::lock_guard lock(write_mu_);
  COFFER_ASSIGN_OR_RETURN(AppRole role, get_role(name));
  role.role_id = std::string(role_id);
  return storage_.put_approle_role(storage::ApproleRoleRow{role.name, role.role_id, stored_json(role).dump()});
}

Result<GeneratedSecretId> AppRoleStore::generate_secret_id(std::string_view role_name, const json& body) {
  if (!body.is_object()) return bad("the request body must be a JSON object");
  COFFER_ASSIGN_OR_RETURN(auto found, find_role(role_name));
  if (!found) return no_role(role_name);
  const AppRole& role = *found;
  if (!role.bind_secret_id) return bad("bind_secret_id is not set on the role");
  COFFER_RETURN_IF_ERROR(refuse_unsupported_fields(body));

  COFFER_ASSIGN_OR_RETURN(auto cidr_texts, string_list_field(body, "cidr_list"));
  std::vector<std::string> cidrs;
  if (cidr_texts) {
    auto canonical = canonical_cidrs(*cidr_texts);
    if (!canonical.ok()) return bad("\"cidr_list\": " + canonical.status().message());
    cidrs = std::move(canonical).value();
    COFFER_ASSIGN_OR_RETURN(auto inner, parse_cidrs(cidrs));
    COFFER_ASSIGN_OR_RETURN(auto outer, parse_cidrs(role.secret_id_bound_cidrs));
    if (!blocks_within(inner, outer)) {
      return bad("failed to verify the CIDR restrictions set on the secret ID: \"cidr_list\" must lie within the "
                 "role's \"secret_id_bound_cidrs\"");
    }
  }

  std::int64_t num_uses = role.secret_id_num_uses;
  COFFER_ASSIGN_OR_RETURN(auto given_uses, int_field(body, "num_uses"));
  if (given_uses) {
    if (*given_uses < 0) return bad("num_uses cannot be negative");
    // 0 means unlimited, which is more than any limit the role sets.
    if (role.secret_id_num_uses > 0 && (*given_uses == 0 || *given_uses > role.secret_id_num_uses)) {
      return bad("num_uses cannot be higher than the role's secret_id_num_uses");
    }
    num_uses = *given_uses;
  }
  std::int64_t ttl = role.secret_id_ttl;
  COFFER_ASSIGN_OR_RETURN(auto given_ttl, duration_field(body, "ttl"));
  if (given_ttl) {
    if (role.secret_id_ttl > 0 && (*given_ttl == 0 || *given_ttl > role.secret_id_ttl)) {
      return bad("ttl cannot be longer than the role's secret_id_ttl");
    }
    ttl = *given_ttl;
  }
  COFFER_ASSIGN_OR_RETURN(auto metadata, parse_metadata(body));

  GeneratedSecretId out;
  COFFER_ASSIGN_OR_RETURN(out.secret_id, new_secret_id());
  COFFER_ASSIGN_OR_RETURN(out.accessor, crypto::random_uuid());
  out.ttl = ttl;
  out.num_uses = num_uses;

  const std::int64_t now = clock_();
  storage::SecretIdRow row;
  COFFER_ASSIGN_OR_RETURN(row.secret_id_hash, secret_id_hash(out.secret_id.view(crypto::reveal())));
  COFFER_ASSIGN_OR_RETURN(row.accessor_hash, accessor_hash(out.accessor));
  row.accessor = out.accessor;
  row.role_name = role.name;
  row.metadata_json = json(metadata).dump(-1, ' ', false, json::error_handler_t::replace);
  row.cidrs_json = json(cidrs).dump();
  row.num_uses = num_uses;
  row.uses_left = num_uses;
  row.created_at = now;
  row.expires_at = ttl > 0 ? now + ttl : 0;
  COFFER_RETURN_IF_ERROR(storage_.insert_secret_id(row));
  return out;
}

Result<std::vector<std::string>> AppRoleStore::list_secret_id_accessors(std::string_view role_name) const {
  COFFER_ASSIGN_OR_RETURN(auto role, find_role(role_name));
  if (!role) return no_role(role_name);
  return storage_.list_secret_id_accessors(role->name);
}

Result<std::optional<storage::SecretIdRow>> AppRoleStore::live_secret_id(
    const std::string& role_name, std::optional<storage::SecretIdRow> row) const {
  if (!row || row->role_name != role_name || used_up(*row)) return std::optional<storage::SecretIdRow>();
  if (row->expires_at > 0 && row->expires_at <= clock_()) return std::optional<storage::SecretIdRow>();
  return row;
}

Result<std::optional<json>> AppRoleStore::lookup_secret_id(std::string_view role_name,
                                                           std::string_view secret_id) const {
  COFFER_ASSIGN_OR_RETURN(auto role, find_role(role_name));
  if (!role) return no_role(role_name);
  if (secret_id.empty()) return bad("missing secret_id");
  if (secret_id.size() > kMaxSecretId) return std::optional<json>();
  COFFER_ASSIGN_OR_RETURN(auto hash, secret_id_hash(secret_id));
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.get_secret_id(hash));
  COFFER_ASSIGN_OR_RETURN(auto live, live_secret_id(role->name, std::move(row)));
  if (!live) return std::optional<json>();
  COFFER_ASSIGN_OR_RETURN(json data, secret_id_data(*live));
  return std::optional<json>(std::move(data));
}

Result<std::optional<json>> AppRoleStore::lookup_secret_id_accessor(std::string_view role_name,
                                                                    std::string_view accessor) const {
  COFFER_ASSIGN_OR_RETURN(auto role, find_role(role_name));
  if (!role) return no_role(role_name);
  if (accessor.empty()) return bad("missing secret_id_accessor");
  if (accessor.size() > kMaxSecretId) return std::optional<json>();
  COFFER_ASSIGN_OR_RETURN(auto hash, accessor_hash(accessor));
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.get_secret_id_by_accessor(hash));
  COFFER_ASSIGN_OR_RETURN(auto live, live_secret_id(role->name, std::move(row)));
  if (!live) return std::optional<json>();
  COFFER_ASSIGN_OR_RETURN(json data, secret_id_data(*live));
  return std::optional<json>(std::move(data));
}

Result<bool> AppRoleStore::destroy_secret_id(std::string_view role_name, std::string_view secret_id) {
  COFFER_ASSIGN_OR_RETURN(auto role, find_role(role_name));
  if (!role) return no_role(role_name);
  if (secret_id.empty()) return bad("missing secret_id");
  if (secret_id.size() > kMaxSecretId) return false;
  COFFER_ASSIGN_OR_RETURN(auto hash, secret_id_hash(secret_id));
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.get_secret_id(hash));
  // A tombstone stays: destroying it would turn a later replay into an unknown secret ID.
  if (!row || row->role_name != role->name || used_up(*row)) return false;
  return storage_.delete_secret_id(hash);
}

Result<bool> AppRoleStore::destroy_secret_id_accessor(std::string_view role_name, std::string_view accessor) {
  COFFER_ASSIGN_OR_RETURN(auto role, find_role(role_name));
  if (!role) return no_role(role_name);
  if (accessor.empty()) return bad("missing secret_id_accessor");
  if (accessor.size() > kMaxSecretId) return false;
  COFFER_ASSIGN_OR_RETURN(auto hash, accessor_hash(accessor));
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.get_secret_id_by_accessor(hash));
  if (!row || row->role_name != role->name || used_up(*row)) return false;
  return storage_.delete_secret_id(row->secret_id_hash);
}

Result<AppRoleLoginResult> AppRoleStore::login(const AppRoleLoginRequest& request) {
  AppRoleLoginResult result;
  auto refuse = [&result](std::string reason) -> AppRoleLoginResult {
    result.outcome = AppRoleLoginOutcome::refused;
    result.reason = std::move(reason);
    return std::move(result);
  };
  if (request.role_id.empty()) return refuse("no role_id presented");
  if (request.role_id.size() > kMaxRoleId) return refuse("the role_id is too long to be one");
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.get_approle_role_by_role_id(std::string(request.role_id)));
  if (!row) return refuse("no role has this role_id");
  COFFER_ASSIGN_OR_RETURN(AppRole role, from_row(*row));
  result.role_name = role.name;

  // The role's address restriction first: a client outside it changes nothing, not even a
  // secret ID's use count or a replay's revocations.
  if (!role.secret_id_bound_cidrs.empty()) {
    COFFER_ASSIGN_OR_RETURN(auto blocks, parse_cidrs(role.secret_id_bound_cidrs));
    if (!address_in(request.remote_address, blocks)) {
      return refuse("source address " + std::string(request.remote_address) +
                    " is outside the role's secret_id_bound_cidrs");
    }
  }
  if (!role.bind_secret_id) {
    if (request.replay_check_only) return refuse("locked out");
    return issue(role, request, nullptr, std::move(result));
  }
  if (request.secret_id.empty()) return refuse("no secret_id presented");
  if (request.secret_id.size() > kMaxSecretId) return refuse("the secret_id is too long to be one");

  // Read first, to check the secret ID's own address restriction (immutable, so it cannot change
  // between this read and the use) and to skip a write transaction for an expired one. The use
  // itself re-checks everything else atomically.
  COFFER_ASSIGN_OR_RETURN(auto hash, secret_id_hash(request.secret_id));
  COFFER_ASSIGN_OR_RETURN(auto peeked, storage_.get_secret_id(hash));
  if (!peeked || peeked->role_name != role.name) {
    return refuse("unknown secret ID for this role (never issued, destroyed, or swept after expiry)");
  }
  result.secret_id_accessor = peeked->accessor;
  COFFER_ASSIGN_OR_RETURN(auto cidr_texts, string_array(peeked->cidrs_json, "cidr_list"));
  if (!cidr_texts.empty()) {
    COFFER_ASSIGN_OR_RETURN(auto blocks, parse_cidrs(cidr_texts));
    if (!address_in(request.remote_address, blocks)) {
      return refuse("source address " + std::string(request.remote_address) + " is outside the secret ID's cidr_list");
    }
  }
  if (!used_up(*peeked)) {
    if (peeked->expires_at > 0 && peeked->expires_at <= clock_()) {
      return refuse("the secret ID expired at " + rfc3339(peeked->expires_at));
    }
    if (request.replay_check_only) return refuse("locked out");
  }
  return issue(role, request, &*peeked, std::move(result));
}

Result<AppRoleLoginResult> AppRoleStore::issue(const AppRole& role, const AppRoleLoginRequest& request,
                                               const storage::SecretIdRow* peeked, AppRoleLoginResult result) {
  TokenSpec spec;
  if (!role.token_no_default_policy) spec.policies.push_back("default");
  spec.policies.insert(spec.policies.end(), role.token_policies.begin(), role.token_policies.end());
  if (peeked != nullptr) {
    COFFER_ASSIGN_OR_RETURN(spec.meta, string_map(peeked->metadata_json));
  }
  spec.meta["role_name"] = role.name;  // always, as Vault does (and it wins over secret-ID metadata)
  spec.display_name = "approle";
  spec.path = "auth/approle/login";
  spec.ttl = role.token_ttl;
  spec.max_ttl = role.effective_max_ttl();
  spec.renewable = true;
  spec.bound_cert_fingerprint = std::string(request.cert_fingerprint);

  if (peeked == nullptr) {
    COFFER_ASSIGN_OR_RETURN(IssuedToken token, tokens_.create(spec));
    result.outcome = AppRoleLoginOutcome::issued;
    result.token = std::move(token);
    return result;
  }

  // The use and the token insert are one storage transaction. The tombstone of a used-up secret
  // ID must outlive every token its uses produced: the token's hard cap (renewals never pass
  // it, children never outlive it). use_secret_id keeps it at least until the secret ID's own
  // expiry.
  std::optional<storage::SecretIdUse> use;
  const std::vector<std::uint8_t> hash = peeked->secret_id_hash;
  auto issued = tokens_.create(spec, [&](const storage::TokenRow& row) -> Status {
    COFFER_ASSIGN_OR_RETURN(auto u, storage_.use_secret_id(hash, role.name, clock_(), row.max_expires_at, row));
    use = std::move(u);
    if (use->outcome != storage::SecretIdUseOutcome::kIssued) {
      return Error(Code::permission_denied, "secret ID not usable");  // no token is handed out
    }
    return Status::Ok();
  });
  if (use && use->outcome != storage::SecretIdUseOutcome::kIssued) {
    switch (use->outcome) {
      case storage::SecretIdUseOutcome::kReplayed:
        result.outcome = AppRoleLoginOutcome::replayed;
        result.revoked_tokens = use->revoked_tokens;
        result.reason = "secret ID replayed: it was used up (" + std::to_string(use->row.num_uses) +
                        " use(s)) and presented again";
        return result;
      case storage::SecretIdUseOutcome::kExpired:
        result.outcome = AppRoleLoginOutcome::refused;
        result.reason = "the secret ID expired at " + rfc3339(use->row.expires_at);
        return result;
      default:
        result.outcome = AppRoleLoginOutcome::refused;
        result.reason = "unknown secret ID for this role (destroyed or swept during the login)";
        return result;
    }
  }
  if (!issued.ok()) return issued.status();
  result.outcome = AppRoleLoginOutcome::issued;
  result.token = std::move(issued).value();
  return result;
}

Result<std::uint64_t> AppRoleStore::sweep_expired() { return storage_.delete_expired_secret_ids(clock_()); }

}  // namespace coffer::auth
