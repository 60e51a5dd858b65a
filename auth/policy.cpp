// Capabilities, the built-in policies, and Acl evaluation (the rules of vault/acl.go: exact
// patterns first, then the highest-priority wildcard pattern; see policy.h). Parsing lives in
// policy_parser.cpp.
#include "auth/policy.h"

#include <algorithm>
#include <map>

namespace coffer::auth {

const char* capability_name(Capability c) {
  switch (c) {
    case Capability::create: return "create";
    case Capability::read: return "read";
    case Capability::update: return "update";
    case Capability::patch: return "patch";
    case Capability::delete_: return "delete";
    case Capability::list: return "list";
    case Capability::sudo: return "sudo";
    case Capability::deny: return "deny";
  }
  return "?";
}

std::optional<Capability> parse_capability(std::string_view name) {
  for (Capability c : {Capability::create, Capability::read, Capability::update, Capability::patch,
                       Capability::delete_, Capability::list, Capability::sudo, Capability::deny}) {
    if (name == capability_name(c)) return c;
  }
  return std::nullopt;
}

Capabilities Capabilities::of(std::initializer_list<Capability> caps) {
  Capabilities out;
  for (Capability c : caps) out.add(c);
  return out;
}

std::vector<std::string> Capabilities::names() const {
  if (denied() || empty()) return {"deny"};
  std::vector<std::string> out;
  for (Capability c : {Capability::sudo, Capability::read, Capability::list, Capability::update,
                       Capability::delete_, Capability::create, Capability::patch}) {
    if (has(c)) out.emplace_back(capability_name(c));
  }
  return out;
}

std::string_view default_policy_text() {
  // Vault's default policy, limited to the endpoints coffer serves: a token may look itself up,
  // renew and revoke itself, ask what it may do, list the mounts it can see, and use response
  // wrapping (wrap, look up and unwrap).
  static constexpr std::string_view kText = R"(# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to list the mounts it has access to (used by the CLI and UI)
path "sys/internal/ui/mounts" {
    capabilities = ["read"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}
)";
  return kText;
}

std::shared_ptr<const Policy> root_policy() {
  static const std::shared_ptr<const Policy> kRoot = [] {
    auto p = std::make_shared<Policy>();
    p->name = std::string(kRootPolicyName);
    p->root = true;
    return p;
  }();
  return kRoot;
}

// ---------------------------------------------------------------------------------------------
// Acl

namespace {

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> parts;
  parts.reserve(static_cast<std::size_t>(std::count(s.begin(), s.end(), '/')) + 1);  // one block
  std::size_t start = 0;
  while (true) {
    const auto slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

// Merges parameter maps the way vault/acl.go NewACL does: an empty list (any value) absorbs the
// other side, otherwise the value lists are concatenated.
void merge_params(nlohmann::json& into, const nlohmann::json& from) {
  for (const auto& [key, values] : from.items()) {
    auto it = into.find(key);
    if (values.empty() || (it != into.end() && it->empty())) {
      into[key] = nlohmann::json::array();
    } else if (it == into.end()) {
      into[key] = values;
    } else {
      for (const auto& v : values) it->push_back(v);
    }
  }
}

// strutil.GlobbedStringsMatch: '*' only at the start and/or the end of the allowed value.
bool globbed_match(std::string_view item, std::string_view val) {
  const bool pre = !item.empty() && item.front() == '*';
  const bool suf = item.size() > 1 && item.back() == '*';
  if (pre && suf) return val.find(item.substr(1, item.size() - 2)) != std::string_view::npos;
  if (pre) return val.size() >= item.size() - 1 && val.ends_with(item.substr(1));
  if (suf) return val.starts_with(item.substr(0, item.size() - 1));
  return item == val;
}

bool in_list(const nlohmann::json& v, const nlohmann::json& list) {
  for (const auto& el : list) {
    if (el.is_string() && v.is_string()) {
      if (globbed_match(el.get_ref<const std::string&>(), v.get_ref<const std::string&>())) return true;
    } else if (el == v) {
      return true;
    }
  }
  return false;
}

// A value matches a parameter list when it is in it; a list value (or a comma-separated string,
// which Vault assumes is a comma list) is checked element by element: all must be allowed, any
// one denied is enough to deny.
std::vector<nlohmann::json> elements(const nlohmann::json& v) {
  std::vector<nlohmann::json> out;
  if (v.is_array()) {
    for (const auto& e : v) out.push_back(e);
  } else if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    std::size_t start = 0;
    while (start <= s.size()) {
      auto comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      std::string item = s.substr(start, comma - start);
      const auto b = item.find_first_not_of(" \t");
      const auto e = item.find_last_not_of(" \t");
      if (b != std::string::npos) out.emplace_back(item.substr(b, e - b + 1));
      start = comma + 1;
    }
  }
  return out;
}

bool allowed_value(const nlohmann::json& v, const nlohmann::json& list) {
  if (list.empty() || in_list(v, list)) return true;
  if (!v.is_array() && !v.is_string()) return false;
  for (const auto& e : elements(v)) {
    if (!in_list(e, list)) return false;
  }
  return true;
}

bool denied_value(const nlohmann::json& v, const nlohmann::json& list) {
  if (list.empty() || in_list(v, list)) return true;
  for (const auto& e : elements(v)) {
    if (in_list(e, list)) return true;
  }
  return false;
}

// vault/policy.go: a path has segment wildcards when a segment starts with '+'.
bool has_segment_wildcard(std::string_view pattern) {
  return pattern == "+" || pattern.starts_with("+/") || pattern.find("/+") != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

void Acl::merge(PathRule& into, const PathRule& from) {
  if (into.capabilities.denied()) return;
  if (from.capabilities.denied()) {
    PathRule deny;
    deny.pattern = into.pattern;
    deny.capabilities = Capabilities::of({Capability::deny});
    into = std::move(deny);
    return;
  }
  into.capabilities |= from.capabilities;
  // Vault prefers the shorter lifetimes when merging wrapping bounds.
  if (from.max_wrapping_ttl > 0 &&
      (into.max_wrapping_ttl == 0 || from.max_wrapping_ttl < into.max_wrapping_ttl)) {
    into.max_wrapping_ttl = from.max_wrapping_ttl;
  }
  if (from.min_wrapping_ttl > 0 &&
      (into.min_wrapping_ttl == 0 || from.min_wrapping_ttl < into.min_wrapping_ttl)) {
    into.min_wrapping_ttl = from.min_wrapping_ttl;
  }
  merge_params(into.allowed_parameters, from.allowed_parameters);
  merge_params(into.denied_parameters, from.denied_parameters);
  for (const auto& r : from.required_parameters) {
    if (std::find(into.required_parameters.begin(), into.required_parameters.end(), r) ==
        into.required_parameters.end()) {
      into.required_parameters.push_back(r);
    }
  }
}

bool Acl::higher_priority(const Rule& a, const Rule& b) {
  // The inverse of vault/acl.go's `less`, so a sort puts the winner first.
  if (a.first_wildcard != b.first_wildcard) return a.first_wildcard > b.first_wildcard;
  if (a.prefix != b.prefix) return !a.prefix;
  if (a.wildcards != b.wildcards) return a.wildcards < b.wildcards;
  if (a.length != b.length) return a.length > b.length;
  return a.perms.pattern > b.perms.pattern;
}

std::shared_ptr<const Acl> Acl::build(const std::vector<std::shared_ptr<const Policy>>& policies) {
  auto acl = std::shared_ptr<Acl>(new Acl());
  std::map<std::string, PathRule> non_exact;  // keyed by pattern: the same pattern unions
  for (const auto& policy : policies) {
    if (!policy) continue;
    if (policy->root) acl->root_ = true;
    for (const PathRule& rule : policy->rules) {
      const bool wildcard = rule.pattern.ends_with('*') || has_segment_wildcard(rule.pattern);
      if (!wildcard) {
        auto [it, inserted] = acl->exact_.try_emplace(rule.pattern, rule);
        if (!inserted) merge(it->second, rule);
        continue;
      }
      auto [it, inserted] = non_exact.try_emplace(rule.pattern, rule);
      if (!inserted) merge(it->second, rule);
    }
  }
  for (auto& [pattern, perms] : non_exact) {
    Rule r;
    r.prefix = pattern.ends_with('*');
    const std::string body = r.prefix ? pattern.substr(0, pattern.size() - 1) : pattern;
    r.length = body.size();
    for (auto part : split(body)) r.segments.emplace_back(part);
    // Vault counts a path with a '+' segment as segment-wildcarded, and for those the first
    // wildcard is the first '+'; for plain prefixes it is where the '*' stood.
    const bool seg = has_segment_wildcard(pattern);
    r.segment_wildcards = seg;
    r.first_wildcard = seg ? pattern.find('+') : body.size();
    for (const auto& s : r.segments) {
      if (s == "+") ++r.wildcards;
    }
    r.perms = std::move(perms);
    acl->wildcard_.push_back(std::move(r));
  }
  std::sort(acl->wildcard_.begin(), acl->wildcard_.end(), higher_priority);
  return acl;
}

bool Acl::matches(const Rule& rule, std::string_view path,
                  const std::vector<std::string_view>& parts) {
  if (!rule.segment_wildcards) {
    // A plain prefix pattern.
    return path.starts_with(std::string_view(rule.perms.pattern).substr(0, rule.length));
  }
  // Segment matching as vault/acl.go: same number of segments unless the pattern is a prefix,
  // in which case the last pattern segment is a prefix of the path's segment there.
  const auto& segs = rule.segments;
  if (parts.size() < segs.size()) return false;
  if (!rule.prefix && parts.size() != segs.size()) return false;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    if (segs[i] == "+" || segs[i] == parts[i]) continue;
    if (rule.prefix && i == segs.size() - 1 && parts[i].starts_with(segs[i])) continue;
    return false;
  }
  return true;
}

const PathRule* Acl::find_non_exact(std::string_view path) const {
  if (wildcard_.empty()) return nullptr;
  const auto parts = split(path);
  for (const Rule& r : wildcard_) {
    if (matches(r, path, parts)) return &r.perms;
  }
  return nullptr;
}

const PathRule* Acl::find(std::string_view path, bool list_op) const {
  while (path.starts_with('/')) path.remove_prefix(1);
  if (auto it = exact_.find(path); it != exact_.end()) return &it->second;
  const bool trailing = path.ends_with('/');
  std::string_view trimmed = trailing ? path.substr(0, path.size() - 1) : path;
  if (list_op) {
    // LIST paths arrive with a trailing '/'; a rule written without it still applies.
    if (auto it = exact_.find(trimmed); it != exact_.end()) return &it->second;
    if (trailing) {
      if (const PathRule* r = find_non_exact(trimmed)) return r;
    }
  }
  return find_non_exact(path);
}

Capabilities Acl::capabilities(std::string_view path) const {
  if (root_) {
    return Capabilities::of({Capability::create, Capability::read, Capability::update,
                             Capability::patch, Capability::delete_, Capability::list,
                             Capability::sudo});
  }
  const PathRule* r = find(path, /*list_op=*/true);
  if (!r || r->capabilities.denied()) return Capabilities();
  return r->capabilities;
}

std::vector<std::string> Acl::capability_names(std::string_view path) const {
  if (root_) return {"root"};
  return capabilities(path).names();
}

Acl::WrappingBounds Acl::wrapping_bounds(std::string_view path, bool list_op) const {
  if (root_) return {};
  const PathRule* r = find(path, list_op);
  if (!r || r->capabilities.denied()) return {};
  return WrappingBounds{r->min_wrapping_ttl, r->max_wrapping_ttl};
}

bool Acl::allows(std::string_view path, Capability op, const AccessRequest& request) const {
  if (op == Capability::deny) return false;
  if (root_) return true;
  const PathRule* r = find(path, op == Capability::list);
  if (!r || r->capabilities.denied() || !r->capabilities.has(op)) return false;
  if (op == Capability::sudo) return true;

  if (r->max_wrapping_ttl > 0 && (!request.wrap_ttl || *request.wrap_ttl > r->max_wrapping_ttl)) {
    return false;
  }
  if (r->min_wrapping_ttl > 0 && (!request.wrap_ttl || *request.wrap_ttl < r->min_wrapping_ttl)) {
    return false;
  }
  // Parameter checks apply only to operations that carry parameters (vault/acl.go).
  if (op != Capability::read && op != Capability::update && op != Capability::create &&
      op != Capability::patch) {
    return true;
  }
  const nlohmann::json* data = request.data && request.data->is_object() ? request.data : nullptr;
  std::map<std::string, const nlohmann::json*> params;  // lowercased names, as Vault compares
  if (data) {
    for (const auto& [k, v] : data->items()) params[lower(k)] = &v;
  }
  for (const auto& req : r->required_parameters) {
    if (!params.count(req)) return false;
  }
  if (params.empty()) return true;
  if (!r->denied_parameters.empty()) {
    if (r->denied_parameters.contains("*")) return false;
    for (const auto& [k, v] : params) {
      auto it = r->denied_parameters.find(k);
      if (it != r->denied_parameters.end() && denied_value(*v, *it)) return false;
    }
  }
  if (r->allowed_parameters.empty()) return true;
  const bool allow_all = r->allowed_parameters.contains("*");
  if (allow_all && r->allowed_parameters.size() == 1) return true;
  for (const auto& [k, v] : params) {
    auto it = r->allowed_parameters.find(k);
    if (it == r->allowed_parameters.end()) {
      if (!allow_all) return false;
      continue;
    }
    if (!allowed_value(*v, *it)) return false;
  }
  return true;
}

}  // namespace coffer::auth
