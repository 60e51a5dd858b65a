// PolicyStore: the named ACL policies (sys/policy, sys/policies/acl) kept in storage, plus the
// built-ins `root` (immutable, allows everything) and `default` (editable, as in Vault), and an
// in-memory cache of parsed policies and of built Acls per policy set.
//
// Names are lowercased on the way in, as Vault does, then must match [a-z0-9._-]{1,128}.
// The cache is per process and is cleared on every put/remove made through this store; a second
// daemon writing the same database would not invalidate it (fine while coffer is single-node).
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/policy.h"
#include "common/status.h"
#include "storage/storage.h"

namespace coffer::auth {

struct PolicyDocument {
  std::string name;
  std::string text;  // the policy exactly as written ("" for root)
};

class PolicyStore {
 public:
  explicit PolicyStore(storage::Storage& storage) : storage_(storage) {}

  PolicyStore(const PolicyStore&) = delete;
  PolicyStore& operator=(const PolicyStore&) = delete;

  // Lowercases and checks a policy name. Errors: invalid_argument.
  static Result<std::string> normalize_name(std::string_view name);

  // Creates or replaces a policy after parsing it. Errors: invalid_argument (bad name, parse
  // error with line number, `cannot update "root" policy`, the reserved "response-wrapping",
  // parameter constraints, which cannot be enforced yet), storage errors.
  Status put(std::string_view name, std::string_view text);
  // Errors: not_found, invalid_argument (bad name), data_loss (stored document unreadable).
  Result<PolicyDocument> get(std::string_view name);
  // Deleting a policy that does not exist succeeds (Vault answers 204). Errors: invalid_argument
  // (`cannot delete "root" policy`, same for default, bad name), storage errors.
  Status remove(std::string_view name);
  // Sorted names, always including "default" and "root".
  Result<std::vector<std::string>> list();

  // The Acl for a token's policy set. Names that do not exist are skipped (Vault warns at token
  // creation and then ignores them). Cached until the next put/remove. Errors: storage errors,
  // data_loss when a stored policy no longer parses (fail closed).
  Result<std::shared_ptr<const Acl>> acl_for(const std::vector<std::string>& names);

 private:
  // The parsed policy, or nullptr when it does not exist.
  Result<std::shared_ptr<const Policy>> load(const std::string& name);
  void invalidate();

  static constexpr std::size_t kMaxCachedAcls = 4096;

  storage::Storage& storage_;
  std::mutex mu_;
  std::uint64_t generation_ = 0;  // bumped on invalidate: a load that raced a write is not cached
  std::unordered_map<std::string, std::shared_ptr<const Policy>> policies_;
  std::unordered_map<std::string, std::shared_ptr<const Acl>> acls_;
};

}  // namespace coffer::auth
