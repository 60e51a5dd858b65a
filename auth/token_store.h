// TokenStore: Vault-style service tokens (vault-api.md §1.4, §1.7) over storage::Storage.
//
// A token is "hvs." + 32 base62 characters from the CSPRNG (about 190 bits); its accessor is 24
// base62 characters. Neither is stored: storage keeps HMAC-SHA256(token-hash key, domain || value),
// with different domain prefixes for tokens and accessors, so a token hash can never be mistaken
// for an accessor hash. Lookups hash what was presented and find the row by that hash.
//
// Lifetimes: ttl (0 = settings.default_ttl) is capped by the token's max TTL (its explicit
// max_ttl, else settings.max_ttl); renewals never pass that cap. A child never outlives its
// parent: its expiry and cap are clamped to the parent's, renewals are clamped to the parent's
// current expiry, and revoking a token revokes its whole subtree. Only root tokens may have no
// expiry.
//
// lookup() answers from a cache of live tokens (auth/token_cache.h) while the storage reports no
// change to any token row since the entry was read; everything else goes to storage.
//
// Thread-safe (the cache is; Storage is thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "storage/storage.h"

namespace coffer::auth {

struct TokenSettings {
  std::int64_t default_ttl = 900;   // seconds (brief §4: 15 minutes)
  std::int64_t max_ttl = 86400;     // seconds
};

// Unix seconds. Tests pass a controllable clock; the daemon passes system_clock_seconds.
using Clock = std::function<std::int64_t()>;
std::int64_t system_clock_seconds();

struct TokenSpec {
  std::vector<std::string> policies;         // as given: the caller adds "default" if wanted
  std::map<std::string, std::string> meta;
  std::string display_name = "token";
  std::string path = "auth/token/create";    // creation path shown by lookup
  std::int64_t ttl = 0;                       // seconds, 0 = settings.default_ttl
  std::int64_t max_ttl = 0;                   // explicit cap in seconds, 0 = settings.max_ttl
  bool renewable = true;
  std::optional<std::vector<std::uint8_t>> parent;  // token_hash of the parent; none = orphan
  std::string bound_cert_fingerprint;         // lowercase hex SHA-256 of the client cert, "" = unbound
  bool no_expiry = false;                     // root tokens only (policies must include "root")
};

// Everything lookup-self needs except the token itself (`id`), which is never stored.
struct TokenInfo {
  std::vector<std::uint8_t> token_hash;  // handle for TokenSpec::parent; not a credential
  std::string accessor;
  std::int64_t creation_time = 0;        // unix seconds (issue time)
  std::int64_t creation_ttl = 0;         // seconds
  std::string display_name;
  std::optional<std::int64_t> expire_time;  // unix seconds; none = never (root)
  std::int64_t explicit_max_ttl = 0;     // the token's hard lifetime cap in seconds, 0 = none
  std::int64_t issue_time = 0;           // unix seconds
  std::map<std::string, std::string> meta;
  std::int64_t num_uses = 0;
  bool orphan = true;
  std::string path;
  std::vector<std::string> policies;
  bool renewable = false;
  std::int64_t ttl = 0;                  // seconds remaining (0 for no expiry)
  std::string type = "service";
  std::string bound_cert_fingerprint;
};

struct IssuedToken {
  crypto::SecretBytes token;  // shown to the client once; never stored or logged
  std::string accessor;
  TokenInfo info;
};

// Vault's lookup-self `data` object for `info`, with `id` as the presented token (the caller has
// it; the store does not). Times are RFC 3339 (UTC); expire_time is null without expiry.
nlohmann::json token_lookup_data(const TokenInfo& info, std::string_view id);

class TokenCache;

class TokenStore {
 public:
  // How many live tokens lookup() keeps parsed (~0.5 KB each); at the limit the cache starts over.
  static constexpr std::size_t kCachedTokens = 4096;

  // `token_hash_key` is the HKDF sub-key for token hashing; it is copied (into locked memory
  // when the original is locked). A key shorter than 32 bytes makes every operation fail with
  // failed_precondition rather than hash tokens under a weak key.
  TokenStore(storage::Storage& storage, const crypto::SecretBytes& token_hash_key,
             TokenSettings settings = {}, Clock clock = system_clock_seconds);
  ~TokenStore();

  TokenStore(const TokenStore&) = delete;
  TokenStore& operator=(const TokenStore&) = delete;

  // Issues a token. With spec.parent: the parent must be live; unless it holds "root", the
  // child's policies must be a subset of the parent's (permission_denied "child policies must be
  // subset of parent") and its lifetime is clamped to the parent's. Errors: invalid_argument
  // (negative TTLs, no_expiry on a non-root token), permission_denied (parent unknown, expired,
  // or policies not a subset), storage errors.
  Result<IssuedToken> create(const TokenSpec& spec);
  // create() with the storage write done by `insert` instead of Storage::insert_token, for
  // callers that must store the token in the same transaction as something else (AppRole's
  // secret-ID use, a wrapped response). `insert` gets the finished row; its error is returned
  // as is and no token is handed out.
  using InsertToken = std::function<Status(const storage::TokenRow&)>;
  Result<IssuedToken> create(const TokenSpec& spec, const InsertToken& insert);
  // create() under the parent given as the presented parent token (checked like lookup()).
  Result<IssuedToken> create_child(std::string_view parent_token,
                                   std::string_view presenter_cert_fingerprint, TokenSpec spec);
  // create() under an already authenticated parent (the caller's TokenInfo from lookup()).
  Result<IssuedToken> create_child(const TokenInfo& parent, TokenSpec spec);

  // Errors: permission_denied "permission denied" (unknown, revoked or expired: an expired token
  // is deleted on sight), permission_denied "token is bound to another client certificate"
  // (for logs; the HTTP layer answers Vault's generic 403). Served from the cache when the
  // storage's token generation has not moved since the token was last read.
  Result<TokenInfo> lookup(std::string_view presented_token,
                           std::string_view presenter_cert_fingerprint);
  // How many tokens the lookup cache holds now (for tests and diagnostics).
  std::size_t cached_tokens() const;

  // Extends the token to now + increment (0 = its creation TTL), capped by its max TTL and by
  // its parent's expiry. Errors: those of lookup(), invalid_argument "lease is not renewable",
  // invalid_argument for a negative increment.
  Result<TokenInfo> renew(std::string_view presented_token,
                          std::string_view presenter_cert_fingerprint, std::int64_t increment);
  // Revokes the token and all its descendants; returns how many were deleted. Errors: those of
  // lookup().
  Result<std::uint64_t> revoke(std::string_view presented_token,
                               std::string_view presenter_cert_fingerprint);

  // The same two without the certificate-binding check, for a caller that has just
  // authenticated the token with lookup(token, fingerprint) in the same request (the API router
  // does this for every request). Prefer the forms above when the fingerprint is at hand.
  Result<TokenInfo> renew(std::string_view presented_token, std::int64_t increment);
  Result<std::uint64_t> revoke(std::string_view presented_token);

  // By accessor (admin endpoints lookup-accessor / revoke-accessor). Errors: invalid_argument
  // "invalid accessor" for an unknown or expired accessor (Vault answers 400 there).
  Result<TokenInfo> lookup_accessor(std::string_view accessor);
  Result<std::uint64_t> revoke_accessor(std::string_view accessor);

  // Deletes every expired token (and its children). Returns how many.
  Result<std::uint64_t> sweep_expired();

  // HMAC-SHA256(token-hash key, domain || 0 || value): how every stored credential handle is
  // derived (tokens, accessors, AppRole secret IDs). Each kind uses its own domain string so a
  // hash of one kind can never match another.
  Result<std::vector<std::uint8_t>> keyed_hash(std::string_view domain, std::string_view value) const;
  // The hash under which a presented token would be stored (for the wrapping endpoints, which
  // take a wrapping token in the body). Errors: permission_denied for an empty or oversized token.
  Result<std::vector<std::uint8_t>> token_hash(std::string_view presented_token) const;

 private:
  Result<std::vector<std::uint8_t>> hash(std::string_view domain, std::string_view value) const {
    return keyed_hash(domain, value);
  }
  // The live row for a presented token (expired rows are deleted and reported as unknown);
  // the binding is checked unless `fingerprint` is null.
  Result<storage::TokenRow> live_row(std::string_view presented_token, const std::string_view* fingerprint);
  Result<TokenInfo> renew_row(storage::TokenRow row, std::int64_t increment);
  Result<storage::TokenRow> live_row_by_hash(const std::vector<std::uint8_t>& token_hash);
  Result<TokenInfo> to_info(const storage::TokenRow& row) const;

  storage::Storage& storage_;
  crypto::SecretBytes key_;
  TokenSettings settings_;
  Clock clock_;
  std::unique_ptr<TokenCache> cache_;
};

}  // namespace coffer::auth
