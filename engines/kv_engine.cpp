#include "engines/kv_engine.h"

#include "common/duration.h"

namespace coffer::engines {

KvEngine::KvEngine(storage::Barrier& barrier, std::string mount)
    : barrier_(barrier), mount_(std::move(mount)) {}

Status KvEngine::validate_path(const std::string& path) {
  if (path.empty()) return Error(Code::invalid_argument, "missing secret path");
  if (path.front() == '/' || path.back() == '/') {
    return Error(Code::invalid_argument, "secret path must not begin or end with '/'");
  }
  if (path.find("//") != std::string::npos) {
    return Error(Code::invalid_argument, "secret path must not contain empty segments");
  }
  return Status::Ok();
}

Result<std::optional<KvSecret>> KvEngine::read(const std::string& path) {
  COFFER_RETURN_IF_ERROR(validate_path(path));
  COFFER_ASSIGN_OR_RETURN(auto plain, barrier_.read(mount_, path));
  if (!plain.has_value()) return std::optional<KvSecret>();
  KvSecret secret;
  const auto text = plain->view(crypto::reveal());
  secret.data = crypto::SecretJson::parse(text.begin(), text.end(), nullptr, false);
  if (!secret.data.is_object()) {
    // The barrier authenticated it, so this is a coffer bug, not tampering.
    return Error(Code::internal, "stored secret " + mount_ + path + " is not a JSON object");
  }
  // Vault: a "ttl" key is advisory only; it sets lease_duration and creates no lease.
  if (auto it = secret.data.find("ttl"); it != secret.data.end()) {
    std::optional<std::int64_t> ttl;
    if (it->is_string()) {
      const auto& s = it->get_ref<const crypto::SecretString&>();
      auto parsed = parse_duration(std::string_view(s.data(), s.size()));
      if (parsed.ok()) ttl = *parsed;
    } else if (it->is_number_unsigned()) {
      ttl = static_cast<std::int64_t>(it->get<std::uint64_t>());
    } else if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
      ttl = it->get<std::int64_t>();
    }
    if (ttl.has_value()) secret.lease_duration = *ttl;
  }
  return std::optional<KvSecret>(std::move(secret));
}

Status KvEngine::write(const std::string& path, const crypto::SecretJson& data) {
  COFFER_RETURN_IF_ERROR(validate_path(path));
  if (!data.is_object()) return Error(Code::invalid_argument, "secret data must be a JSON object");
  return barrier_.write(mount_, path, crypto::dump_secret(data));
}

Result<bool> KvEngine::exists(const std::string& path) {
  COFFER_RETURN_IF_ERROR(validate_path(path));
  COFFER_ASSIGN_OR_RETURN(auto plain, barrier_.read(mount_, path));
  return plain.has_value();
}

Status KvEngine::remove(const std::string& path) {
  COFFER_RETURN_IF_ERROR(validate_path(path));
  COFFER_ASSIGN_OR_RETURN(bool removed, barrier_.remove(mount_, path));
  (void)removed;  // Vault answers 204 whether or not it existed
  return Status::Ok();
}

Result<std::vector<std::string>> KvEngine::list(const std::string& prefix) {
  if (!prefix.empty() && (prefix.front() == '/' || prefix.back() != '/')) {
    return Error(Code::invalid_argument, "list prefix must be empty or end with '/'");
  }
  return barrier_.list(mount_, prefix);
}

}  // namespace coffer::engines
