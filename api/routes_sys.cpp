// sys/ endpoints: health, seal-status, leader (unauthenticated, bare JSON bodies as Vault sends
// them), ACL policies (sys/policies/acl and the legacy sys/policy), mounts and the KV preflight
// sys/internal/ui/mounts/<path>.
#include <charconv>
#include <ctime>

#include "api/routes.h"

namespace coffer::api {
namespace {

using auth::Capability;

std::optional<int> query_code(const HttpRequest& req, std::string_view name) {
  const std::string* v = req.query_param(name);
  if (v == nullptr) return std::nullopt;
  int code = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), code);
  if (ec != std::errc() || p != v->data() + v->size() || code < 100 || code > 599) return std::nullopt;
  return code;
}

HttpResponse health(Services& s, Call& call) {
  // A running cofferd is always initialised and unsealed (it refuses to start otherwise) and
  // has no standby mode, so only activecode applies; other overrides are accepted and ignored,
  // as the Go client always sends them.
  const int code = query_code(call.http, "activecode").value_or(200);
  SecretJson b;
  b["initialized"] = true;
  b["sealed"] = false;
  b["standby"] = false;
  b["performance_standby"] = false;
  b["replication_performance_mode"] = "disabled";
  b["replication_dr_mode"] = "disabled";
  b["server_time_utc"] = static_cast<std::int64_t>(std::time(nullptr));
  b["version"] = js(s.info.version);
  b["cluster_name"] = js(s.info.cluster_name);
  b["cluster_id"] = js(s.info.cluster_id);
  HttpResponse r = json_response(code, b);
  if (call.method == "HEAD") r.body.clear();
  return r;
}

HttpResponse seal_status(Services& s) {
  SecretJson b;
  b["type"] = js(s.info.seal_type);
  b["initialized"] = true;
  b["sealed"] = false;
  b["t"] = 0;
  b["n"] = 0;
  b["progress"] = 0;
  b["nonce"] = "";
  b["version"] = js(s.info.version);
  b["build_date"] = js(s.info.build_date);
  b["migration"] = false;
  b["recovery_seal"] = true;
  b["storage_type"] = "sqlite";
  b["cluster_name"] = js(s.info.cluster_name);
  b["cluster_id"] = js(s.info.cluster_id);
  return json_response(200, b);
}

HttpResponse leader() {
  SecretJson b;
  b["ha_enabled"] = false;
  b["is_self"] = false;
  b["active_time"] = "0001-01-01T00:00:00Z";
  b["leader_address"] = "";
  b["leader_cluster_address"] = "";
  b["performance_standby"] = false;
  b["performance_standby_last_remote_wal"] = 0;
  return json_response(200, b);
}

// sys/ responses repeat `data` at the top level (Vault's HTTPSysInjector).
HttpResponse sys_data_response(const Call& call, const SecretJson& data) {
  SecretJson e = envelope(call.request_id);
  e["data"] = data;
  for (const auto& [k, v] : data.items()) e[k] = v;
  return json_response(200, e);
}

HttpResponse keys_response(const Call& call, const std::vector<std::string>& keys) {
  if (keys.empty()) return error_response(404, {});
  return sys_data_response(call, SecretJson{{"keys", string_array(keys)}});
}

// Policy endpoints: `acl_style` = sys/policies/acl (body/field "policy"), otherwise the legacy
// sys/policy (GET returns "rules"; list also returns "policies").
std::optional<HttpResponse> policy_routes(Services& s, Call& call, std::string_view base, bool acl_style) {
  const std::string_view p = call.path;
  if (p == base || p == std::string(base) + "/") {
    const bool list_op = call.method == "LIST" || (!acl_style && call.method == "GET");
    if (!list_op) return unsupported_operation();
    if (!allowed(call, std::string(base), acl_style ? Capability::list : Capability::read)) return permission_denied();
    auto names = s.policies.list();
    if (!names.ok()) return status_response(names.status());
    if (acl_style) return keys_response(call, *names);
    return sys_data_response(call, SecretJson{{"keys", string_array(*names)}, {"policies", string_array(*names)}});
  }
  if (p.substr(0, base.size() + 1) != std::string(base) + "/") return std::nullopt;
  const std::string name(p.substr(base.size() + 1));
  const std::string acl_path = call.path;

  if (call.method == "GET") {
    if (!allowed(call, acl_path, Capability::read)) return permission_denied();
    auto doc = s.policies.get(name);
    if (!doc.ok()) return status_response(doc.status());
    SecretJson data;
    data["name"] = js(doc->name);
    data[acl_style ? "policy" : "rules"] = js(doc->text);
    return sys_data_response(call, data);
  }
  if (call.method == "PUT") {
    HttpResponse err;
    auto body = body_object(s, call, err);
    if (!body) return err;
    auto it = body->find("policy");
    if (it == body->end() && !acl_style) it = body->find("rules");
    if (it == body->end() || !it->is_string()) return error_response(400, {"'policy' parameter not supplied or empty"});
    auto exists = s.policies.get(name);
    if (!exists.ok() && exists.status().code() != Code::not_found) return status_response(exists.status());
    if (!allowed(call, acl_path, exists.ok() ? Capability::update : Capability::create)) {
      return permission_denied();
    }
    const auto& text = it->get_ref<const crypto::SecretString&>();
    Status st = s.policies.put(name, std::string(text.data(), text.size()));
    if (!st.ok()) return status_response(st);
    return no_content();
  }
  if (call.method == "DELETE") {
    if (!allowed(call, acl_path, Capability::delete_)) return permission_denied();
    Status st = s.policies.remove(name);
    if (!st.ok()) return status_response(st);
    return no_content();
  }
  return unsupported_operation();
}

SecretJson kv_mount_description(const std::string& mount) {
  SecretJson m;
  m["path"] = js(mount);
  m["type"] = "kv";
  m["description"] = "key/value secret storage (version 1)";
  m["accessor"] = "kv_coffer";
  m["uuid"] = "";
  m["options"] = SecretJson{{"version", "1"}};
  m["config"] = SecretJson{{"default_lease_ttl", 0}, {"max_lease_ttl", 0}, {"force_no_cache", false}};
  m["local"] = false;
  m["seal_wrap"] = false;
  m["external_entropy_access"] = false;
  return m;
}

}  // namespace

std::optional<HttpResponse> route_unauthenticated(Services& s, Call& call) {
  const std::string& p = call.path;
  if (p == "sys/health") {
    if (call.method != "GET" && call.method != "HEAD") return unsupported_operation();
    return health(s, call);
  }
  if (p == "sys/seal-status") {
    if (call.method != "GET") return unsupported_operation();
    return seal_status(s);
  }
  if (p == "sys/leader") {
    if (call.method != "GET") return unsupported_operation();
    return leader();
  }
  return route_login(s, call);
}

std::optional<HttpResponse> route_sys(Services& s, Call& call) {
  const std::string& p = call.path;
  if (p.rfind("sys/", 0) != 0) return std::nullopt;
  if (auto r = policy_routes(s, call, "sys/policies/acl", true)) return r;
  if (auto r = policy_routes(s, call, "sys/policy", false)) return r;

  constexpr std::string_view kPreflight = "sys/internal/ui/mounts/";
  if (p.rfind(kPreflight, 0) == 0) {
    if (call.method != "GET") return unsupported_operation();
    // Authorised by the caller's rights on the target path, not by a grant on sys/.
    const std::string target = p.substr(kPreflight.size());
    const std::string& mount = s.kv.mount();
    const bool in_kv = target + "/" == mount || target.rfind(mount, 0) == 0;
    if (!in_kv) return error_response(404, {});
    if (call.acl == nullptr || !call.acl->any_capability(target)) return permission_denied();
    SecretJson e = envelope(call.request_id);
    e["data"] = kv_mount_description(mount);
    return json_response(200, e);
  }
  if (p == "sys/mounts") {
    if (call.method != "GET") return unsupported_operation();
    if (!allowed(call, p, Capability::read)) return permission_denied();
    SecretJson data;
    data[js(s.kv.mount())] = kv_mount_description(s.kv.mount());
    return sys_data_response(call, data);
  }
  return std::nullopt;
}

}  // namespace coffer::api
