// Vault ACL policies: the parsed form of a policy (HCL or JSON text), and the Acl that answers
// "may this token do <op> on <path>?" for a set of policies.
//
// Semantics follow Vault's vault/policy.go and vault/acl.go (vault-api.md §1.13): deny by default;
// an exact pattern beats every wildcard pattern; among wildcard patterns only the highest-priority
// match counts (first wildcard position, then exact-length over `*`, then fewer `+`, then longer,
// then lexicographically larger); the same pattern in several policies is unioned; `deny` wins
// within a pattern; the `root` policy allows everything.
//
// An Acl is immutable once built; build it once per token policy set and share it (PolicyStore
// caches them). Evaluation is a hash lookup for exact patterns, then a scan of the pre-sorted
// wildcard rules that stops at the first match.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace coffer::auth {

enum class Capability : std::uint8_t { create, read, update, patch, delete_, list, sudo, deny };

// "create", "read", ..., "delete" for Capability::delete_.
const char* capability_name(Capability c);
std::optional<Capability> parse_capability(std::string_view name);

// A set of capabilities (a bitmask).
class Capabilities {
 public:
  constexpr Capabilities() = default;
  static Capabilities of(std::initializer_list<Capability> caps);

  bool has(Capability c) const { return (bits_ & bit(c)) != 0; }
  void add(Capability c) { bits_ = static_cast<std::uint16_t>(bits_ | bit(c)); }
  bool empty() const { return bits_ == 0; }
  bool denied() const { return has(Capability::deny); }
  std::uint16_t bits() const { return bits_; }
  Capabilities& operator|=(Capabilities o) {
    bits_ = static_cast<std::uint16_t>(bits_ | o.bits_);
    return *this;
  }
  friend bool operator==(Capabilities a, Capabilities b) { return a.bits_ == b.bits_; }

  // Names in the order Vault's sys/capabilities reports them (sudo, read, list, update, delete,
  // create, patch); ["deny"] when denied or empty.
  std::vector<std::string> names() const;

 private:
  static constexpr std::uint16_t bit(Capability c) {
    return static_cast<std::uint16_t>(1u << static_cast<unsigned>(c));
  }
  std::uint16_t bits_ = 0;
};

// One `path "<pattern>" { ... }` block.
struct PathRule {
  std::string pattern;  // as written, minus a leading '/': "secret/app/*", "secret/+/teamb"
  Capabilities capabilities;
  std::int64_t min_wrapping_ttl = 0;  // seconds, 0 = none
  std::int64_t max_wrapping_ttl = 0;
  // Parameter constraints, keys lowercased; values are arrays (empty = any value), exactly as
  // Vault stores them. Enforced by Acl::allows when the caller passes the request data.
  nlohmann::json allowed_parameters = nlohmann::json::object();
  nlohmann::json denied_parameters = nlohmann::json::object();
  std::vector<std::string> required_parameters;
  int line = 0;  // where the block starts in HCL text (0 for JSON)
};

struct Policy {
  std::string name;
  std::vector<PathRule> rules;
  bool root = false;  // the built-in root policy: everything allowed
};

// Parses policy text. JSON is recognised by a leading '{'; anything else is HCL.
// Errors: invalid_argument with the line number (HCL) and the path, e.g.
// `line 3: path "secret/*": invalid capability "raed"`.
Result<Policy> parse_policy(std::string_view name, std::string_view text);

// Validates a path pattern: '*' only as the last character, no "+*", no empty pattern.
Status validate_pattern(std::string_view pattern);

inline constexpr std::string_view kRootPolicyName = "root";
inline constexpr std::string_view kDefaultPolicyName = "default";
// Held by response-wrapping tokens only; reserved (PolicyStore refuses to define it) and empty.
inline constexpr std::string_view kResponseWrappingPolicyName = "response-wrapping";
// The built-in default policy text (token self-service, sys/capabilities-self,
// sys/internal/ui/mounts), as Vault ships it, trimmed to what coffer serves.
std::string_view default_policy_text();
std::shared_ptr<const Policy> root_policy();

// What a request brings that a rule may constrain (Vault's wrapping TTL and parameter checks).
struct AccessRequest {
  std::optional<std::int64_t> wrap_ttl;  // requested response-wrapping TTL in seconds, if any
  const nlohmann::json* data = nullptr;  // request parameters (a JSON object), or null for none
};

class Acl {
 public:
  // Unknown or null entries are skipped. A set containing the root policy is root.
  static std::shared_ptr<const Acl> build(const std::vector<std::shared_ptr<const Policy>>& policies);

  bool is_root() const { return root_; }

  // The capabilities the highest-priority matching pattern grants (empty when none matches or
  // the pattern denies). For root: every capability except deny. Uses Vault's lookup for LIST
  // (a trailing '/' is also tried without it), as Vault's sys/capabilities does.
  Capabilities capabilities(std::string_view path) const;
  // Vault's sys/capabilities answer: ["root"] for root, ["deny"] when nothing is granted.
  std::vector<std::string> capability_names(std::string_view path) const;
  // Whether the token may do anything at all on `path` (root, or a non-deny match): for answers
  // such as sys/internal/ui/mounts/<path> that depend on "can see it", not on one operation.
  bool any_capability(std::string_view path) const { return root_ || !capabilities(path).empty(); }

  // May `op` be done on `path`? `op` is the operation's capability (create, read, update, patch,
  // delete, list) or sudo (for root-protected paths). Deny by default. Applies the matched
  // rule's min/max_wrapping_ttl and parameter constraints to `request` as Vault does: a rule
  // with a wrapping TTL bound refuses unwrapped requests; required parameters must be present.
  bool allows(std::string_view path, Capability op, const AccessRequest& request = {}) const;

  // The response-wrapping TTL bounds (min_wrapping_ttl, max_wrapping_ttl; 0 = none) of the rule
  // that governs `path`, so that a refusal by allows() can say why. None for root, for a path no
  // rule matches and for a denied one.
  struct WrappingBounds {
    std::int64_t min = 0;
    std::int64_t max = 0;
  };
  WrappingBounds wrapping_bounds(std::string_view path, bool list_op) const;

 private:
  struct Rule {
    std::string pattern;               // full pattern as written
    std::vector<std::string> segments; // pattern (minus trailing '*') split on '/'
    bool prefix = false;               // ends in '*'
    bool segment_wildcards = false;    // has a '+' segment
    std::size_t first_wildcard = 0;    // index of the first '+' or '*'
    std::size_t wildcards = 0;         // number of '+' segments
    std::size_t length = 0;            // pattern length without the trailing '*'
    PathRule perms;                    // merged permissions (pattern, caps, constraints)
  };

  static void merge(PathRule& into, const PathRule& from);
  static bool higher_priority(const Rule& a, const Rule& b);
  static bool matches(const Rule& rule, std::string_view path,
                      const std::vector<std::string_view>& parts);
  const PathRule* find(std::string_view path, bool list_op) const;
  const PathRule* find_non_exact(std::string_view path) const;

  // Transparent, so find() looks a request path up without copying it into a std::string.
  struct PathHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  bool root_ = false;
  std::unordered_map<std::string, PathRule, PathHash, std::equal_to<>> exact_;
  std::vector<Rule> wildcard_;  // sorted, highest priority first
};

}  // namespace coffer::auth
