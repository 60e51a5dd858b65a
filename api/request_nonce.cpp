// X-Coffer-Nonce: see request_nonce.h and auth/nonce_guard.h.
#include "api/request_nonce.h"

#include "common/log.h"

namespace coffer::api {

std::optional<HttpResponse> request_nonce_refusal(auth::NonceGuard* guard, Call& call) {
  if (call.method != "PUT" && call.method != "DELETE") return std::nullopt;
  const crypto::SecretString* header = call.http.header("x-coffer-nonce");
  if (header == nullptr) return std::nullopt;
  if (guard == nullptr) return error_response(400, {"X-Coffer-Nonce is not supported by this server"});
  // Scope: the client certificate (mutual TLS is always on). Without one (only in-process
  // tests), the source address.
  const std::string scope = call.http.peer.fingerprint_sha256_hex.empty()
                                ? "addr:" + call.http.remote_address
                                : "cert:" + call.http.peer.fingerprint_sha256_hex;
  auto checked = guard->check_and_record(scope, std::string_view(header->data(), header->size()));
  if (!checked.ok()) {
    // Fail closed: a nonce that cannot be recorded could be replayed.
    log_error("request " + call.request_id + ": recording X-Coffer-Nonce failed: " + checked.status().to_string());
    call.audit_error = "request nonce could not be recorded: " + checked.status().message();
    return error_response(503, {"request nonce could not be recorded: try again"});
  }
  switch (checked->outcome) {
    case auth::NonceOutcome::kAccepted:
      return std::nullopt;
    case auth::NonceOutcome::kReplayed:
      log_info("request " + call.request_id + " (" + call.method + " " + call.path + ") from " +
               call.http.remote_address + " refused: replayed X-Coffer-Nonce");
      return error_response(409, {checked->message});
    case auth::NonceOutcome::kMalformed:
    case auth::NonceOutcome::kOutsideWindow:
      break;
  }
  return error_response(400, {checked->message});
}

}  // namespace coffer::api
