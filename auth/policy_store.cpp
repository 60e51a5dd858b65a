// PolicyStore: named policies in storage, the built-ins, and the Acl cache (see policy_store.h).
// Stored document: {"name": "<name>", "policy": "<text as written>"}; the text is re-parsed on
// load so a parser fix applies to existing policies.
#include "auth/policy_store.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace coffer::auth {

Result<std::string> PolicyStore::normalize_name(std::string_view name) {
  std::string out(name);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (out.empty()) return Error(Code::invalid_argument, "missing policy name");
  if (out.size() > 128) return Error(Code::invalid_argument, "policy name is longer than 128 characters");
  for (char c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return Error(Code::invalid_argument,
                   "invalid policy name \"" + std::string(name) + "\": use only a-z, 0-9, '.', '_' and '-'");
    }
  }
  return out;
}

void PolicyStore::invalidate() {
  std::lock_guard lock(mu_);
  ++generation_;
  policies_.clear();
  acls_.clear();
}

Status PolicyStore::put(std::string_view name, std::string_view text) {
  COFFER_ASSIGN_OR_RETURN(std::string n, normalize_name(name));
  if (n == kRootPolicyName) return Error(Code::invalid_argument, "cannot update \"root\" policy");
  // The wrapping tokens' policy: it must grant nothing through the ACL (the router confines those
  // tokens to sys/wrapping/), so nobody may define it.
  if (n == kResponseWrappingPolicyName) {
    return Error(Code::invalid_argument, "cannot update \"response-wrapping\" policy: it is reserved for "
                                         "response-wrapping tokens");
  }
  COFFER_ASSIGN_OR_RETURN(Policy parsed, parse_policy(n, text));
  // The router does not yet hand request data to the ACL check, so parameter constraints could
  // not be enforced: refuse them rather than store a policy that means less than it says. The
  // wrapping TTL bounds are enforced (the router passes X-Vault-Wrap-TTL to every check).
  for (const PathRule& rule : parsed.rules) {
    const char* unsupported = nullptr;
    if (!rule.allowed_parameters.empty()) unsupported = "allowed_parameters";
    else if (!rule.denied_parameters.empty()) unsupported = "denied_parameters";
    else if (!rule.required_parameters.empty()) unsupported = "required_parameters";
    if (unsupported != nullptr) {
      return Error(Code::invalid_argument,
                   "policy \"" + n + "\", path \"" + rule.pattern + "\": " + unsupported +
                       " is not supported by coffer yet (it could not be enforced); remove it");
    }
  }
  const nlohmann::json doc = {{"name", n}, {"policy", std::string(text)}};
  // Invalidate before and after the write: a reader that loaded the old text between the two is
  // stopped from caching it by the generation bump.
  invalidate();
  COFFER_RETURN_IF_ERROR(storage_.put_policy(storage::NamedDocument{n, doc.dump()}));
  invalidate();
  return Status::Ok();
}

Result<PolicyDocument> PolicyStore::get(std::string_view name) {
  COFFER_ASSIGN_OR_RETURN(std::string n, normalize_name(name));
  if (n == kRootPolicyName) return PolicyDocument{n, ""};
  COFFER_ASSIGN_OR_RETURN(auto stored, storage_.get_policy(n));
  if (!stored) {
    if (n == kDefaultPolicyName) return PolicyDocument{n, std::string(default_policy_text())};
    return Error(Code::not_found, "no policy named \"" + n + "\"");
  }
  const auto doc = nlohmann::json::parse(stored->json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("policy") || !doc["policy"].is_string()) {
    return Error(Code::data_loss, "stored policy \"" + n + "\" is unreadable");
  }
  return PolicyDocument{n, doc["policy"].get<std::string>()};
}

Status PolicyStore::remove(std::string_view name) {
  COFFER_ASSIGN_OR_RETURN(std::string n, normalize_name(name));
  if (n == kRootPolicyName || n == kDefaultPolicyName) {
    return Error(Code::invalid_argument, "cannot delete \"" + n + "\" policy");
  }
  invalidate();
  COFFER_ASSIGN_OR_RETURN(bool deleted, storage_.delete_policy(n));
  (void)deleted;
  invalidate();
  return Status::Ok();
}

Result<std::vector<std::string>> PolicyStore::list() {
  COFFER_ASSIGN_OR_RETURN(std::vector<std::string> names, storage_.list_policies());
  names.emplace_back(kDefaultPolicyName);
  names.emplace_back(kRootPolicyName);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

Result<std::shared_ptr<const Policy>> PolicyStore::load(const std::string& name) {
  if (name == kRootPolicyName) return root_policy();
  // Grants nothing, even if a database from before the name was reserved holds such a policy.
  if (name == kResponseWrappingPolicyName) return std::shared_ptr<const Policy>();
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    if (auto it = policies_.find(name); it != policies_.end()) return it->second;
    generation = generation_;
  }
  std::shared_ptr<const Policy> policy;
  auto doc = get(name);
  if (!doc.ok() && doc.status().code() != Code::not_found) return doc.status();
  if (doc.ok()) {
    auto parsed = parse_policy(name, doc->text);
    if (!parsed.ok()) {
      return Error(Code::data_loss, "stored policy \"" + name + "\" no longer parses: " +
                                        parsed.status().message());
    }
    policy = std::make_shared<const Policy>(std::move(parsed).value());
  }
  std::lock_guard lock(mu_);
  if (generation == generation_) policies_[name] = policy;
  return policy;
}

Result<std::shared_ptr<const Acl>> PolicyStore::acl_for(const std::vector<std::string>& names) {
  std::vector<std::string> sorted;
  sorted.reserve(names.size());
  for (const auto& raw : names) {
    auto n = normalize_name(raw);
    if (n.ok()) sorted.push_back(std::move(n).value());  // a bad name cannot exist: skip it
  }
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string key;
  for (const auto& n : sorted) {
    key += n;
    key += '\n';
  }

  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    if (auto it = acls_.find(key); it != acls_.end()) return it->second;
    generation = generation_;
  }
  std::vector<std::shared_ptr<const Policy>> policies;
  for (const auto& n : sorted) {
    COFFER_ASSIGN_OR_RETURN(auto p, load(n));
    if (p) policies.push_back(std::move(p));
  }
  auto acl = Acl::build(policies);
  std::lock_guard lock(mu_);
  if (generation == generation_) {
    if (acls_.size() >= kMaxCachedAcls) acls_.clear();  // bound memory; rebuilding is cheap
    acls_[key] = acl;
  }
  return acl;
}

}  // namespace coffer::auth
