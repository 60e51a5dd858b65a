#include "api/vault_json.h"

#include <algorithm>
#include <charconv>
#include <utility>

namespace coffer::api {
namespace {

// Appends `v` as a JSON string literal: plain text (request ids are UUIDs, mount types are
// words) straight into the body, anything else through nlohmann's escaping.
void append_quoted(crypto::SecretBytes& out, std::string_view v) {
  const bool plain = std::all_of(v.begin(), v.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f && c != '"' && c != '\\';
  });
  if (!plain) {
    out.append(nlohmann::json(std::string(v)).dump());
    return;
  }
  out.append(std::string_view("\""));
  out.append(v);
  out.append(std::string_view("\""));
}

}  // namespace

int http_status_for(Code code) {
  switch (code) {
    case Code::ok: return 200;
    case Code::invalid_argument: return 400;
    case Code::already_exists: return 400;
    case Code::not_found: return 404;
    case Code::permission_denied: return 403;
    case Code::failed_precondition: return 400;
    case Code::unavailable: return 503;
    case Code::resource_exhausted: return 429;
    case Code::data_loss: return 500;
    case Code::internal: return 500;
  }
  return 500;
}

HttpResponse error_response(int status, const std::vector<std::string>& errors) {
  SecretJson body;
  body["errors"] = SecretJson::array();
  for (const auto& e : errors) body["errors"].push_back(SecretJson::string_t(e.begin(), e.end()));
  return json_response(status, body);
}

HttpResponse status_response(const Status& status) {
  const int code = http_status_for(status.code());
  if (status.code() == Code::internal || status.code() == Code::data_loss) {
    return error_response(code, {"internal error"});
  }
  if (status.code() == Code::not_found) return error_response(code, {});
  return error_response(code, {status.message()});
}

HttpResponse json_response(int status, const SecretJson& body) {
  HttpResponse r;
  r.status = status;
  r.body = crypto::dump_secret(body);
  return r;
}

HttpResponse no_content() {
  HttpResponse r;
  r.status = 204;
  return r;
}

SecretJson envelope(const std::string& request_id) {
  SecretJson e;
  e["request_id"] = SecretJson::string_t(request_id.begin(), request_id.end());
  e["lease_id"] = "";
  e["renewable"] = false;
  e["lease_duration"] = 0;
  e["data"] = nullptr;
  e["wrap_info"] = nullptr;
  e["warnings"] = nullptr;
  e["auth"] = nullptr;
  e["mount_type"] = "";
  return e;
}

HttpResponse envelope_response(const std::string& request_id, const crypto::SecretBytes& data_json,
                               std::int64_t lease_duration, std::string_view mount_type) {
  char lease[24];
  const auto end = std::to_chars(lease, lease + sizeof lease, lease_duration).ptr;
  // Keys in std::map order, as SecretJson's dump writes the envelope.
  constexpr std::string_view kHead = "{\"auth\":null,\"data\":";
  constexpr std::string_view kLease = ",\"lease_duration\":";
  constexpr std::string_view kMount = ",\"lease_id\":\"\",\"mount_type\":";
  constexpr std::string_view kId = ",\"renewable\":false,\"request_id\":";
  constexpr std::string_view kTail = ",\"warnings\":null,\"wrap_info\":null}";
  HttpResponse r;
  r.status = 200;
  r.body.reserve(kHead.size() + data_json.size() + kLease.size() + sizeof lease + kMount.size() +
                 mount_type.size() + 2 + kId.size() + request_id.size() + 2 + kTail.size());
  r.body.append(kHead);
  r.body.append(data_json.bytes(crypto::reveal()));
  r.body.append(kLease);
  r.body.append(std::string_view(lease, static_cast<std::size_t>(end - lease)));
  r.body.append(kMount);
  append_quoted(r.body, mount_type);
  r.body.append(kId);
  append_quoted(r.body, request_id);
  r.body.append(kTail);
  return r;
}

Result<SecretJson> parse_object_body(const crypto::SecretBytes& body, std::size_t max_depth) {
  if (body.empty()) return SecretJson::object();
  const auto text = body.view(crypto::reveal());
  // nlohmann's parser is iterative (no recursion), so depth only costs memory, which the body
  // limit bounds; the callback marks over-deep input and drops it so the DOM stays small.
  bool too_deep = false;
  const SecretJson::parser_callback_t limit = [&too_deep, max_depth](int depth, nlohmann::detail::parse_event_t event,
                                                                     SecretJson&) {
    if ((event == nlohmann::detail::parse_event_t::object_start ||
         event == nlohmann::detail::parse_event_t::array_start) &&
        static_cast<std::size_t>(depth) >= max_depth) {
      too_deep = true;
    }
    return !too_deep;
  };
  SecretJson result;
  try {
    result = SecretJson::parse(text.begin(), text.end(), limit, true);
  } catch (const nlohmann::json::parse_error& e) {
    // The library's message quotes the input near the error, which may be secret: use the offset.
    return Error(Code::invalid_argument, "failed to parse JSON input: syntax error at byte " + std::to_string(e.byte));
  } catch (const nlohmann::json::exception&) {
    return Error(Code::invalid_argument, "failed to parse JSON input");
  }
  if (too_deep) {
    return Error(Code::invalid_argument,
                 "failed to parse JSON input: nesting deeper than " + std::to_string(max_depth) + " levels");
  }
  if (!result.is_object()) return Error(Code::invalid_argument, "request body must be a JSON object");
  return result;
}

}  // namespace coffer::api
