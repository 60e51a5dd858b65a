// TokenStore: minting, hashing, lookup, renewal and revocation of service tokens (see
// token_store.h for the rules). The token value lives only in SecretBytes and in the HMAC input;
// what reaches storage is its keyed hash.
#include "auth/token_store.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "auth/token_cache.h"
#include "common/duration.h"
#include "crypto/encoding.h"
#include "crypto/mac.h"
#include "crypto/random.h"

namespace coffer::auth {
namespace {

using nlohmann::json;

// Domain prefixes for the HMAC input: a token hash and an accessor hash of the same string differ.
constexpr std::string_view kTokenDomain = "coffer token v1";
constexpr std::string_view kAccessorDomain = "coffer accessor v1";
constexpr std::string_view kTokenPrefix = "hvs.";
constexpr std::size_t kTokenRandomChars = 32;  // 32 * log2(62) ~ 190 bits
constexpr std::size_t kAccessorChars = 24;
constexpr std::size_t kMaxPresentedToken = 1024;  // anything longer is not ours: refuse unhashed

Status denied() { return Error(Code::permission_denied, "permission denied"); }

std::string normalize_fingerprint(std::string_view fp) {
  std::string out;
  for (char c : fp) {
    if (c == ':') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::vector<std::string> sanitize_policies(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& p : in) {
    std::string s;
    for (char c : p) {
      if (c == ' ' || c == '\t') continue;
      s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (!s.empty()) out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// A token bound to a certificate is honoured only over a connection with that certificate.
Status check_binding(const std::string& bound_fingerprint, std::string_view presented_fingerprint) {
  if (bound_fingerprint.empty()) return Status::Ok();
  const std::string presented = normalize_fingerprint(presented_fingerprint);
  if (!crypto::constant_time_equal(crypto::as_bytes(bound_fingerprint), crypto::as_bytes(presented))) {
    return Error(Code::permission_denied, "token is bound to another client certificate");
  }
  return Status::Ok();
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string rfc3339(std::int64_t unix_seconds) { return format_rfc3339(unix_seconds); }

}  // namespace

std::int64_t system_clock_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json token_lookup_data(const TokenInfo& info, std::string_view id) {
  json meta = info.meta.empty() ? json(nullptr) : json(info.meta);
  return json{{"accessor", info.accessor},
              {"creation_time", info.creation_time},
              {"creation_ttl", info.creation_ttl},
              {"display_name", info.display_name},
              {"entity_id", ""},
              {"expire_time", info.expire_time ? json(rfc3339(*info.expire_time)) : json(nullptr)},
              {"explicit_max_ttl", info.explicit_max_ttl},
              {"id", std::string(id)},
              {"issue_time", rfc3339(info.issue_time)},
              {"meta", meta},
              {"num_uses", info.num_uses},
              {"orphan", info.orphan},
              {"path", info.path},
              {"policies", info.policies},
              {"renewable", info.renewable},
              {"ttl", info.ttl},
              {"type", info.type}};
}

TokenStore::TokenStore(storage::Storage& storage, const crypto::SecretBytes& token_hash_key,
                       TokenSettings settings, Clock clock)
    : storage_(storage),
      key_(token_hash_key.clone()),
      settings_(settings),
      clock_(std::move(clock)),
      cache_(std::make_unique<TokenCache>(kCachedTokens)) {}

TokenStore::~TokenStore() = default;

std::size_t TokenStore::cached_tokens() const { return cache_->size(); }

Result<std::vector<std::uint8_t>> TokenStore::keyed_hash(std::string_view domain, std::string_view value) const {
  if (key_.size() < 32) {
    return Error(Code::failed_precondition, "the token-hash key is missing or shorter than 32 bytes");
  }
  crypto::SecretBytes message;
  message.reserve(domain.size() + 1 + value.size());
  message.append(domain);
  message.push_back(0);
  message.append(value);
  COFFER_ASSIGN_OR_RETURN(crypto::Digest d, crypto::hmac_sha256(key_, message.bytes(crypto::reveal())));
  return std::vector<std::uint8_t>(d.begin(), d.end());
}

Result<TokenInfo> TokenStore::to_info(const storage::TokenRow& row) const {
  TokenInfo info;
  info.token_hash = row.token_hash;
  info.accessor = row.accessor;
  info.creation_time = row.issued_at;
  info.issue_time = row.issued_at;
  info.creation_ttl = row.ttl_seconds;
  info.display_name = row.display_name;
  info.path = row.path;
  info.renewable = row.renewable;
  info.orphan = row.orphan;
  info.bound_cert_fingerprint = row.bound_cert_fingerprint;
  if (row.expires_at != 0) {
    info.expire_time = row.expires_at;
    info.ttl = std::max<std::int64_t>(0, row.expires_at - clock_());
  }
  if (row.max_expires_at != 0) info.explicit_max_ttl = row.max_expires_at - row.issued_at;

  const json policies = json::parse(row.policies_json, nullptr, /*allow_exceptions=*/false);
  const json meta = json::parse(row.meta_json.empty() ? "{}" : row.meta_json, nullptr, false);
  if (!policies.is_array() || !meta.is_object()) {
    return Error(Code::data_loss, "stored token " + row.accessor + " has unreadable policies or metadata");
  }
  for (const auto& p : policies) {
    if (!p.is_string()) return Error(Code::data_loss, "stored token " + row.accessor + " has a bad policy");
    info.policies.push_back(p.get<std::string>());
  }
  for (const auto& [k, v] : meta.items()) {
    if (!v.is_string()) return Error(Code::data_loss, "stored token " + row.accessor + " has bad metadata");
    info.meta[k] = v.get<std::string>();
  }
  return info;
}

Result<storage::TokenRow> TokenStore::live_row_by_hash(const std::vector<std::uint8_t>& token_hash) {
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.get_token(token_hash));
  if (!row) return denied();
  if (row->expires_at != 0 && row->expires_at <= clock_()) {
    // Expired: remove it (and its children, which cannot outlive it) now rather than at the next
    // sweep. A failed delete still denies; the sweep will retry.
    auto deleted = storage_.delete_token_tree(token_hash);
    (void)deleted;
    return denied();
  }
  return std::move(*row);
}

Result<storage::TokenRow> TokenStore::live_row(std::string_view presented_token,
                                               const std::string_view* fingerprint) {
  COFFER_ASSIGN_OR_RETURN(auto h, token_hash(presented_token));
  COFFER_ASSIGN_OR_RETURN(storage::TokenRow row, live_row_by_hash(h));
  if (fingerprint != nullptr) COFFER_RETURN_IF_ERROR(check_binding(row.bound_cert_fingerprint, *fingerprint));
  return row;
}

Result<std::vector<std::uint8_t>> TokenStore::token_hash(std::string_view presented_token) const {
  if (presented_token.empty() || presented_token.size() > kMaxPresentedToken) return denied();
  return hash(kTokenDomain, presented_token);
}

Result<IssuedToken> TokenStore::create(const TokenSpec& spec) {
  return create(spec, [this](const storage::TokenRow& row) { return storage_.insert_token(row); });
}

Result<IssuedToken> TokenStore::create(const TokenSpec& spec, const InsertToken& insert) {
  if (spec.ttl < 0 || spec.max_ttl < 0) return Error(Code::invalid_argument, "TTLs must not be negative");
  const std::int64_t now = clock_();
  std::vector<std::string> policies = sanitize_policies(spec.policies);

  std::optional<storage::TokenRow> parent;
  if (spec.parent) {
    COFFER_ASSIGN_OR_RETURN(auto p, live_row_by_hash(*spec.parent));
    COFFER_ASSIGN_OR_RETURN(TokenInfo pinfo, to_info(p));
    if (policies.empty()) policies = pinfo.policies;  // Vault: a child inherits by default
    if (!contains(pinfo.policies, "root")) {
      for (const auto& pol : policies) {
        if (!contains(pinfo.policies, pol)) {
          return Error(Code::permission_denied, "child policies must be subset of parent");
        }
      }
    }
    parent = std::move(p);
  }

  storage::TokenRow row;
  row.issued_at = now;
  row.renewable = spec.renewable;
  if (spec.no_expiry) {
    // Only a root token may live forever, and never under a parent that itself expires.
    if (!contains(policies, "root") || (parent && parent->expires_at != 0)) {
      return Error(Code::invalid_argument, "only root tokens may be created without an expiry");
    }
    row.renewable = false;  // nothing to renew
  } else {
    const std::int64_t cap = spec.max_ttl > 0 ? std::min(spec.max_ttl, settings_.max_ttl) : settings_.max_ttl;
    const std::int64_t ttl = std::min(spec.ttl > 0 ? spec.ttl : settings_.default_ttl, cap);
    row.expires_at = now + ttl;
    row.max_expires_at = now + cap;
    if (parent && parent->expires_at != 0) {
      // A child never outlives its parent (storage deletes it with the parent anyway).
      row.expires_at = std::min(row.expires_at, parent->expires_at);
      if (parent->max_expires_at != 0) row.max_expires_at = std::min(row.max_expires_at, parent->max_expires_at);
    }
    row.ttl_seconds = row.expires_at - now;
  }

  // Mint. The token's characters are secret; the accessor is a public handle.
  COFFER_ASSIGN_OR_RETURN(crypto::SecretBytes random, crypto::random_base62(kTokenRandomChars));
  crypto::SecretBytes token;
  token.reserve(kTokenPrefix.size() + kTokenRandomChars);
  token.append(kTokenPrefix);
  token.append(random.bytes(crypto::reveal()));
  COFFER_ASSIGN_OR_RETURN(crypto::SecretBytes accessor_bytes, crypto::random_base62(kAccessorChars));
  const std::string accessor(accessor_bytes.view(crypto::reveal()));

  COFFER_ASSIGN_OR_RETURN(row.token_hash, hash(kTokenDomain, token.view(crypto::reveal())));
  COFFER_ASSIGN_OR_RETURN(row.accessor_hash, hash(kAccessorDomain, accessor));
  row.accessor = accessor;
  if (parent) row.parent_hash = parent->token_hash;
  row.orphan = !parent.has_value();
  // dump() throws on invalid UTF-8; metadata is informational, so replace bad bytes instead.
  row.policies_json = json(policies).dump(-1, ' ', false, json::error_handler_t::replace);
  row.meta_json = json(spec.meta).dump(-1, ' ', false, json::error_handler_t::replace);
  row.display_name = spec.display_name;
  row.path = spec.path;
  row.bound_cert_fingerprint = normalize_fingerprint(spec.bound_cert_fingerprint);
  COFFER_RETURN_IF_ERROR(insert(row));

  COFFER_ASSIGN_OR_RETURN(TokenInfo info, to_info(row));
  return IssuedToken{std::move(token), accessor, std::move(info)};
}

Result<IssuedToken> TokenStore::create_child(std::string_view parent_token,
                                             std::string_view presenter_cert_fingerprint, TokenSpec spec) {
  COFFER_ASSIGN_OR_RETURN(storage::TokenRow parent, live_row(parent_token, &presenter_cert_fingerprint));
  spec.parent = parent.token_hash;
  return create(spec);
}

Result<IssuedToken> TokenStore::create_child(const TokenInfo& parent, TokenSpec spec) {
  spec.parent = parent.token_hash;  // create() re-reads the parent, so a revoked one is refused
  return create(spec);
}

Result<TokenInfo> TokenStore::lookup(std::string_view presented_token,
                                     std::string_view presenter_cert_fingerprint) {
  COFFER_ASSIGN_OR_RETURN(auto h, token_hash(presented_token));
  // Read before the row: a row read after a revocation committed is read under its generation.
  const std::optional<std::uint64_t> generation = storage_.token_generation();
  if (generation) {
    if (std::optional<TokenInfo> hit = cache_->find(h, *generation)) {
      const std::int64_t now = clock_();
      // An expired entry falls through to storage, which deletes the token (and moves the
      // generation, emptying the cache at the next put).
      if (!hit->expire_time || *hit->expire_time > now) {
        COFFER_RETURN_IF_ERROR(check_binding(hit->bound_cert_fingerprint, presenter_cert_fingerprint));
        if (hit->expire_time) hit->ttl = std::max<std::int64_t>(0, *hit->expire_time - now);
        return std::move(*hit);
      }
    }
  }
  COFFER_ASSIGN_OR_RETURN(storage::TokenRow row, live_row_by_hash(h));
  COFFER_RETURN_IF_ERROR(check_binding(row.bound_cert_fingerprint, presenter_cert_fingerprint));
  COFFER_ASSIGN_OR_RETURN(TokenInfo info, to_info(row));
  if (generation) cache_->put(h, *generation, info);
  return info;
}

Result<TokenInfo> TokenStore::renew_row(storage::TokenRow row, std::int64_t increment) {
  if (!row.renewable) return Error(Code::invalid_argument, "lease is not renewable");
  if (row.expires_at == 0) return to_info(row);
  const std::int64_t now = clock_();
  std::int64_t expires = now + (increment > 0 ? increment : row.ttl_seconds);
  if (row.max_expires_at != 0) expires = std::min(expires, row.max_expires_at);
  if (row.parent_hash) {
    COFFER_ASSIGN_OR_RETURN(auto parent, storage_.get_token(*row.parent_hash));
    if (parent && parent->expires_at != 0) expires = std::min(expires, parent->expires_at);
  }
  COFFER_RETURN_IF_ERROR(storage_.update_token_expiry(row.token_hash, expires));
  row.expires_at = expires;
  return to_info(row);
}

Result<TokenInfo> TokenStore::renew(std::string_view presented_token,
                                    std::string_view presenter_cert_fingerprint, std::int64_t increment) {
  if (increment < 0) return Error(Code::invalid_argument, "increment must not be negative");
  COFFER_ASSIGN_OR_RETURN(storage::TokenRow row, live_row(presented_token, &presenter_cert_fingerprint));
  return renew_row(std::move(row), increment);
}

Result<TokenInfo> TokenStore::renew(std::string_view presented_token, std::int64_t increment) {
  if (increment < 0) return Error(Code::invalid_argument, "increment must not be negative");
  COFFER_ASSIGN_OR_RETURN(storage::TokenRow row, live_row(presented_token, nullptr));
  return renew_row(std::move(row), increment);
}

Result<std::uint64_t> TokenStore::revoke(std::string_view presented_token,
                                         std::string_view presenter_cert_fingerprint) {
  COFFER_ASSIGN_OR_RETURN(storage::TokenRow row, live_row(presented_token, &presenter_cert_fingerprint));
  return storage_.delete_token_tree(row.token_hash);
}

Result<std::uint64_t> TokenStore::revoke(std::string_view presented_token) {
  COFFER_ASSIGN_OR_RETURN(storage::TokenRow row, live_row(presented_token, nullptr));
  return storage_.delete_token_tree(row.token_hash);
}

Result<TokenInfo> TokenStore::lookup_accessor(std::string_view accessor) {
  if (accessor.empty() || accessor.size() > kMaxPresentedToken) {
    return Error(Code::invalid_argument, "invalid accessor");
  }
  COFFER_ASSIGN_OR_RETURN(auto h, hash(kAccessorDomain, accessor));
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.get_token_by_accessor(h));
  if (!row) return Error(Code::invalid_argument, "invalid accessor");
  auto live = live_row_by_hash(row->token_hash);
  if (!live.ok()) {
    if (live.status().code() == Code::permission_denied) return Error(Code::invalid_argument, "invalid accessor");
    return live.status();
  }
  return to_info(*live);
}

Result<std::uint64_t> TokenStore::revoke_accessor(std::string_view accessor) {
  COFFER_ASSIGN_OR_RETURN(TokenInfo info, lookup_accessor(accessor));
  return storage_.delete_token_tree(info.token_hash);
}

Result<std::uint64_t> TokenStore::sweep_expired() { return storage_.delete_expired_tokens(clock_()); }

}  // namespace coffer::auth
