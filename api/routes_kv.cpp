// KV v1 endpoints under the kv mount ("secret/"): read, write (create vs update decided by an
// existence check, as Vault's ACLs distinguish them), delete and list, with Vault's exact codes:
// 404 {"errors":[]} for a missing secret or an empty list, 204 for writes and deletes.
#include "api/routes.h"
#include "common/log.h"

namespace coffer::api {

using auth::Capability;

namespace {

// Logs the real cause of a storage failure and answers Vault's generic 500: the client must not
// learn whether a record was tampered with or the disk failed, and nothing secret is echoed.
HttpResponse storage_failure(const Call& call, const Status& st) {
  log_error("request " + call.request_id + " " + call.method + " " + call.path + " failed: " + st.to_string());
  return status_response(st.code() == Code::invalid_argument ? st : Status(Code::internal, ""));
}

}  // namespace

std::optional<HttpResponse> route_kv(Services& s, Call& call) {
  const std::string& mount = s.kv.mount();
  if (call.path.rfind(mount, 0) != 0 && call.path + "/" != mount) return std::nullopt;
  const std::string rel = call.path.size() > mount.size() ? call.path.substr(mount.size()) : "";

  if (call.method == "LIST") {
    std::string prefix = rel;
    if (!prefix.empty() && prefix.back() != '/') prefix.push_back('/');
    if (!allowed(call, mount + prefix, Capability::list)) return permission_denied();
    auto keys = s.kv.list(prefix);
    if (!keys.ok()) return storage_failure(call, keys.status());
    if (keys->empty()) return error_response(404, {});
    SecretJson e = envelope(call.request_id);
    e["data"] = SecretJson{{"keys", string_array(*keys)}};
    e["mount_type"] = "kv";
    return json_response(200, e);
  }

  if (Status valid = engines::KvEngine::validate_path(rel); !valid.ok()) {
    return error_response(400, {valid.message()});
  }

  if (call.method == "GET") {
    if (!allowed(call, call.path, Capability::read)) return permission_denied();
    // The stored JSON goes into the envelope as text: no DOM of the secret on the hot path.
    auto secret = s.kv.read_text(rel);
    if (!secret.ok()) return storage_failure(call, secret.status());
    if (!secret->has_value()) return error_response(404, {});
    return envelope_response(call.request_id, (*secret)->json, (*secret)->lease_duration, "kv");
  }

  if (call.method == "PUT") {
    // Parse first: a malformed body is a 400 whatever the caller's rights, and changes nothing.
    HttpResponse err;
    auto body = body_object(s, call, err);
    if (!body) return err;
    auto exists = s.kv.exists(rel);
    if (!exists.ok()) return storage_failure(call, exists.status());
    if (!allowed(call, call.path, *exists ? Capability::update : Capability::create)) return permission_denied();
    Status st = s.kv.write(rel, *body);
    if (!st.ok()) return storage_failure(call, st);
    return no_content();
  }

  if (call.method == "DELETE") {
    if (!allowed(call, call.path, Capability::delete_)) return permission_denied();
    Status st = s.kv.remove(rel);
    if (!st.ok()) return storage_failure(call, st);
    return no_content();
  }
  return unsupported_operation();
}

}  // namespace coffer::api
