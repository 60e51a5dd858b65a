// AppRole auth (vault-api.md §1.6; hashicorp/vault builtin/credential/approle): roles, their
// role_id, secret IDs, and the login that turns (role_id, secret_id) into a token.
//
// Secret IDs are 128 random bits from the CSPRNG, shown once (in the HTTP response that
// generates them) and stored only as HMAC(token-hash key, "coffer approle secret-id v1" || 0 ||
// secret ID), like tokens but under their own domain, so a secret-ID hash can never match a
// token hash. Each has a public accessor (stored in clear and as a keyed hash) for listing,
// lookup and destruction.
//
// A login is one atomic storage call (Storage::use_secret_id): consume one use, insert the token
// and link it to the secret ID, in one transaction, so two concurrent logins with a single-use
// secret ID give exactly one token. A used-up limited secret ID stays as a tombstone until the
// tokens it produced can no longer be alive (their hard max TTL); presenting it again is a
// replay: it is refused like any bad credential, and the tokens of the earlier uses (with their
// children) are revoked in the same transaction.
//
// Every refusal looks the same to the client (AppRoleLoginOutcome::refused: Vault's
// "invalid role or secret ID"); the precise reason is in AppRoleLoginResult::reason for the log.
//
// Tokens from an AppRole login are service tokens, orphans, bound to the presenting client
// certificate (coffer requires mutual TLS on every connection: the AppRole identifies the unit,
// the certificate the machine and channel it logs in over).
//
// Vault role fields coffer does not implement and which would restrict tokens (token_bound_cidrs,
// token_num_uses, token_period, batch tokens) are refused when set rather than ignored, as for
// cert roles. Role names are case-sensitive (Vault lower-cases them; here an ACL on
// auth/approle/role/<name> always names exactly the role it governs).
//
// Thread-safe: role writes are serialised; logins only go through Storage, which is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/token_store.h"
#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "storage/storage.h"

namespace coffer::auth {

// Vault's message for every refused AppRole login.
inline constexpr std::string_view kInvalidRoleOrSecretId = "invalid role or secret ID";

struct AppRole {
  std::string name;
  std::string role_id;
  bool bind_secret_id = true;
  std::vector<std::string> secret_id_bound_cidrs;  // canonical CIDR text; empty = any address
  std::int64_t secret_id_num_uses = 0;             // 0 = unlimited
  std::int64_t secret_id_ttl = 0;                  // seconds, 0 = no expiry
  std::vector<std::string> token_policies;         // normalised, sorted, de-duplicated
  std::int64_t token_ttl = 0;                      // seconds, 0 = the token store's default
  std::int64_t token_max_ttl = 0;                  // seconds, 0 = the system maximum
  std::int64_t token_explicit_max_ttl = 0;         // hard cap, 0 = none
  bool token_no_default_policy = false;

  // The smaller non-zero of token_max_ttl and token_explicit_max_ttl, or 0.
  std::int64_t effective_max_ttl() const;
};

// A freshly generated secret ID. `secret_id` is shown to the client once and never stored.
struct GeneratedSecretId {
  crypto::SecretBytes secret_id;
  std::string accessor;
  std::int64_t ttl = 0;       // seconds, 0 = no expiry
  std::int64_t num_uses = 0;  // 0 = unlimited
};

struct AppRoleLoginRequest {
  std::string_view role_id;
  std::string_view secret_id;         // empty: none presented
  std::string_view remote_address;    // the TCP peer (HttpRequest::remote_address)
  std::string_view cert_fingerprint;  // the client certificate the token is bound to
  // The login is locked out (auth/login_lockout.h): issue nothing, but still recognise a
  // replayed secret ID and revoke what it produced, so a lockout can never shield a thief's
  // token from the replay that exposes it.
  bool replay_check_only = false;
};

enum class AppRoleLoginOutcome {
  issued,    // token set
  refused,   // the client gets kInvalidRoleOrSecretId; `reason` says why, for the log
  replayed,  // refused too; a used-up secret ID was presented again and revoked_tokens were revoked
};

struct AppRoleLoginResult {
  AppRoleLoginOutcome outcome = AppRoleLoginOutcome::refused;
  std::string reason;              // log text; never contains the secret ID
  std::string role_name;           // when the role_id named a role
  std::string secret_id_accessor;  // when the secret ID was found
  std::uint64_t revoked_tokens = 0;
  std::optional<IssuedToken> token;
};

class AppRoleStore {
 public:
  // `tokens` must hash with the same key it stores tokens under (it derives secret-ID hashes).
  AppRoleStore(storage::Storage& storage, TokenStore& tokens, Clock clock = system_clock_seconds)
      : storage_(storage), tokens_(tokens), clock_(std::move(clock)) {}

  AppRoleStore(const AppRoleStore&) = delete;
  AppRoleStore& operator=(const AppRoleStore&) = delete;

  // --- roles ---
  // POST auth/approle/role/:name. Creates the role (with a random role_id unless the body gives
  // "role_id") or updates only the fields given. Errors: invalid_argument with a message fit for
  // a 400 (bad name or field, an unsupported restricting field, "at least one constraint should
  // be enabled on the role" for bind_secret_id=false without secret_id_bound_cidrs, role_id in
  // use by another role), storage errors.
  Status write_role(std::string_view name, const nlohmann::json& body);
  // Errors: not_found (no such role), data_loss (unreadable stored role), storage errors.
  Result<AppRole> get_role(std::string_view name) const;
  // Vault's GET shape (the `data` object). Errors: those of get_role().
  Result<nlohmann::json> read_role(std::string_view name) const;
  // Deleting a missing role succeeds. Deletes its secret IDs; tokens already issued stay until
  // they expire or are revoked. Errors: invalid_argument (bad name), storage errors.
  Status delete_role(std::string_view name);
  Result<std::vector<std::string>> list_roles() const;
  // POST .../role-id {"role_id"}. Errors: not_found, invalid_argument (empty or malformed,
  // in use by another role), storage errors.
  Status set_role_id(std::string_view name, std::string_view role_id);

  // --- secret IDs ---
  // POST .../secret-id with Vault's fields: metadata (object of strings, or that object as a
  // JSON string), cidr_list, num_uses, ttl. Errors: not_found (no role), invalid_argument
  // ("bind_secret_id is not set on the role", "num_uses cannot be higher than the role's
  // secret_id_num_uses", "ttl cannot be longer than the role's secret_id_ttl", CIDRs outside
  // the role's, token_bound_cidrs, bad types), storage errors.
  Result<GeneratedSecretId> generate_secret_id(std::string_view role_name, const nlohmann::json& body);
  // Accessors of the role's usable secret IDs, sorted. Errors: not_found (no role).
  Result<std::vector<std::string>> list_secret_id_accessors(std::string_view role_name) const;
  // Vault's lookup `data` (secret_id_accessor, metadata, cidr_list, secret_id_num_uses = uses
  // left, secret_id_ttl, creation/expiration/last_updated times); nullopt when the role has no
  // such live secret ID (unknown, expired, used up). Errors: not_found (no role), storage errors.
  Result<std::optional<nlohmann::json>> lookup_secret_id(std::string_view role_name, std::string_view secret_id) const;
  Result<std::optional<nlohmann::json>> lookup_secret_id_accessor(std::string_view role_name,
                                                                  std::string_view accessor) const;
  // Destroys a live secret ID; returns whether one was destroyed. A used-up one is left alone
  // (its tombstone keeps recognising replays until it expires). Errors: not_found (no role).
  Result<bool> destroy_secret_id(std::string_view role_name, std::string_view secret_id);
  Result<bool> destroy_secret_id_accessor(std::string_view role_name, std::string_view accessor);

  // --- login ---
  // See AppRoleLoginRequest / AppRoleLoginOutcome. Errors (not refusals): storage and crypto
  // failures only.
  Result<AppRoleLoginResult> login(const AppRoleLoginRequest& request);

  // Deletes expired secret IDs and tombstones. Returns how many.
  Result<std::uint64_t> sweep_expired();

 private:
  Result<std::optional<AppRole>> find_role(std::string_view name) const;
  Result<std::vector<std::uint8_t>> secret_id_hash(std::string_view secret_id) const;
  Result<std::vector<std::uint8_t>> accessor_hash(std::string_view accessor) const;
  // The live (usable, unexpired) row of `role_name` under `hash`, or nullopt.
  Result<std::optional<storage::SecretIdRow>> live_secret_id(const std::string& role_name,
                                                             std::optional<storage::SecretIdRow> row) const;
  Result<AppRoleLoginResult> issue(const AppRole& role, const AppRoleLoginRequest& request,
                                   const storage::SecretIdRow* peeked, AppRoleLoginResult result);

  storage::Storage& storage_;
  TokenStore& tokens_;
  Clock clock_;
  std::mutex write_mu_;  // serialises read-modify-write of role documents
};

}  // namespace coffer::auth
