// Storage: what coffer keeps on disk, behind one interface (sqlite today; a replicated store
// later). Storage is untrusted: it only ever sees ciphertext, wrapped keys, keyed hashes of
// tokens and non-secret metadata. The AEAD barrier (storage/barrier.h) sits above it.
// All methods are safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace coffer::storage {

// One DEK (or derivation key) of the keyring, wrapped by the master key.
struct KeyringRow {
  std::string purpose;               // "dek" (encrypts records) or "derive" (HKDF sub-key root)
  std::uint32_t version = 0;         // 1, 2, ... per purpose
  std::string mechanism;             // WrappedKey::mechanism
  std::string master_key_id;         // WrappedKey::master_key_id
  std::vector<std::uint8_t> wrapped; // WrappedKey::blob
  std::int64_t created_at = 0;       // unix seconds
  std::uint64_t encryptions = 0;     // how many records it sealed (retire before the GCM bound)
};

// One encrypted secret. (mount, path) is the identity; `sealed` is the barrier's output.
struct SecretRecord {
  std::string mount;                 // "secret/"
  std::string path;                  // "app/db" (no leading slash)
  std::uint32_t dek_version = 0;
  std::vector<std::uint8_t> sealed;
  std::int64_t updated_at = 0;
};

// One token. The token itself is never stored: only HMAC(token-hash key, token).
struct TokenRow {
  std::vector<std::uint8_t> token_hash;     // 32 bytes, primary key
  std::vector<std::uint8_t> accessor_hash;  // 32 bytes, unique
  std::string accessor;                     // public handle shown to the client, not a credential
  std::optional<std::vector<std::uint8_t>> parent_hash;  // token_hash of the parent, if any
  std::string policies_json;                // JSON array of policy names
  std::string meta_json;                    // JSON object (cert_name, common_name, ...)
  std::string display_name;
  std::string path;                         // "auth/cert/login", "auth/token/create", "auth/token/root"
  std::string bound_cert_fingerprint;       // hex SHA-256 of the client cert DER, "" = unbound
  std::int64_t issued_at = 0;               // unix seconds
  std::int64_t expires_at = 0;              // unix seconds, 0 = never (root)
  std::int64_t max_expires_at = 0;          // hard cap for renewals, 0 = none
  std::int64_t ttl_seconds = 0;             // creation TTL
  bool renewable = true;
  bool orphan = true;
};

// Non-secret configuration objects, stored as JSON text.
struct NamedDocument {
  std::string name;
  std::string json;
};

// An AppRole role: its JSON document and its role_id (unique; login finds the role by it).
struct ApproleRoleRow {
  std::string name;
  std::string role_id;
  std::string json;
};

// One secret ID of an AppRole role. The secret ID itself is never stored, only
// HMAC(token-hash key, domain || secret ID), like tokens.
struct SecretIdRow {
  std::vector<std::uint8_t> secret_id_hash;  // 32 bytes, primary key
  std::vector<std::uint8_t> accessor_hash;   // 32 bytes, unique
  std::string accessor;                      // public handle, not a credential
  std::string role_name;
  std::string metadata_json;                 // JSON object of strings
  std::string cidrs_json;                    // JSON array of CIDR blocks, [] = any address
  std::int64_t num_uses = 0;                 // 0 = unlimited
  std::int64_t uses_left = 0;                // limited IDs: uses remaining; 0 = used up
  std::int64_t created_at = 0;               // unix seconds
  std::int64_t expires_at = 0;               // unix seconds, 0 = never
  std::int64_t last_used_at = 0;             // unix seconds, 0 = never used
};

// What use_secret_id() found and did.
enum class SecretIdUseOutcome {
  kIssued,    // one use consumed and the token inserted, in one transaction
  kUnknown,   // no such secret ID (never existed, destroyed, or swept)
  kExpired,   // past expires_at; nothing changed
  kReplayed,  // a used-up single/limited-use secret ID presented again: the tokens the earlier
              // uses produced (with their children) were revoked in the same transaction
};
struct SecretIdUse {
  SecretIdUseOutcome outcome = SecretIdUseOutcome::kUnknown;
  SecretIdRow row;                  // the row before this use (empty for kUnknown)
  std::uint64_t revoked_tokens = 0; // kReplayed: how many tokens were revoked
};

// A response-wrapped response: the barrier-sealed response body, owned by its wrapping token.
struct WrappedResponseRow {
  std::vector<std::uint8_t> token_hash;  // the wrapping token's hash (tokens.token_hash)
  std::string creation_path;             // the request path that produced the response
  std::int64_t created_at = 0;           // unix seconds
  std::int64_t ttl_seconds = 0;
  std::uint32_t dek_version = 0;
  std::vector<std::uint8_t> sealed;
};

class Storage {
 public:
  virtual ~Storage() = default;

  // --- key/value metadata (schema facts, init state, generation counter) ---
  virtual Result<std::optional<std::string>> get_meta(const std::string& key) = 0;
  virtual Status put_meta(const std::string& key, const std::string& value) = 0;

  // --- keyring ---
  virtual Result<std::vector<KeyringRow>> load_keyring() = 0;
  // Errors: already_exists when (purpose, version) is taken.
  virtual Status insert_keyring_row(const KeyringRow& row) = 0;
  // All rows or none (one transaction), so `cofferctl init` never leaves half a keyring behind.
  // Errors: already_exists when any (purpose, version) is taken; nothing is inserted then.
  virtual Status insert_keyring_rows(const std::vector<KeyringRow>& rows) = 0;
  virtual Status add_encryptions(const std::string& purpose, std::uint32_t version,
                                 std::uint64_t count) = 0;

  // --- encrypted secrets ---
  virtual Result<std::optional<SecretRecord>> get_secret(const std::string& mount,
                                                         const std::string& path) = 0;
  virtual Status put_secret(const SecretRecord& record) = 0;   // insert or replace
  // Returns whether a row was deleted.
  virtual Result<bool> delete_secret(const std::string& mount, const std::string& path) = 0;
  // Immediate children of `prefix` ("" or ending in '/'): leaf names, and folder names with a
  // trailing '/', sorted and de-duplicated, as Vault's LIST returns them.
  virtual Result<std::vector<std::string>> list_secrets(const std::string& mount,
                                                        const std::string& prefix) = 0;

  // --- tokens ---
  virtual Status insert_token(const TokenRow& row) = 0;
  virtual Result<std::optional<TokenRow>> get_token(const std::vector<std::uint8_t>& token_hash) = 0;
  virtual Result<std::optional<TokenRow>> get_token_by_accessor(
      const std::vector<std::uint8_t>& accessor_hash) = 0;
  virtual Status update_token_expiry(const std::vector<std::uint8_t>& token_hash,
                                     std::int64_t expires_at) = 0;
  // Deletes the token and, recursively, every child token. Returns how many were deleted.
  virtual Result<std::uint64_t> delete_token_tree(const std::vector<std::uint8_t>& token_hash) = 0;
  // Deletes tokens with 0 < expires_at <= now. Returns how many.
  virtual Result<std::uint64_t> delete_expired_tokens(std::int64_t now) = 0;
  // For callers that cache token rows (auth::TokenStore): a counter that moves forward after
  // every committed change to an existing token row made through this object (revocation,
  // expiry, renewal, one-time-credential and wrapping deletions; inserts need not move it).
  // Read it BEFORE get_token: a row read under generation g may be served from a cache only
  // while the counter still reads g. nullopt: not tracked, so nothing may be cached.
  virtual std::optional<std::uint64_t> token_generation() const = 0;

  // --- policies and cert roles (non-secret documents) ---
  virtual Status put_policy(const NamedDocument& doc) = 0;
  virtual Result<std::optional<NamedDocument>> get_policy(const std::string& name) = 0;
  virtual Result<bool> delete_policy(const std::string& name) = 0;
  virtual Result<std::vector<std::string>> list_policies() = 0;

  virtual Status put_cert_role(const NamedDocument& doc) = 0;
  virtual Result<std::optional<NamedDocument>> get_cert_role(const std::string& name) = 0;
  virtual Result<bool> delete_cert_role(const std::string& name) = 0;
  virtual Result<std::vector<std::string>> list_cert_roles() = 0;

  // --- AppRole ---
  // Insert or replace by name. Errors: already_exists when another role has this role_id.
  virtual Status put_approle_role(const ApproleRoleRow& row) = 0;
  virtual Result<std::optional<ApproleRoleRow>> get_approle_role(const std::string& name) = 0;
  virtual Result<std::optional<ApproleRoleRow>> get_approle_role_by_role_id(const std::string& role_id) = 0;
  // Deletes the role and all its secret IDs (tokens already issued stay until they expire).
  virtual Result<bool> delete_approle_role(const std::string& name) = 0;
  virtual Result<std::vector<std::string>> list_approle_roles() = 0;

  // Errors: already_exists (hash or accessor taken), not_found (no such role).
  virtual Status insert_secret_id(const SecretIdRow& row) = 0;
  virtual Result<std::optional<SecretIdRow>> get_secret_id(const std::vector<std::uint8_t>& secret_id_hash) = 0;
  virtual Result<std::optional<SecretIdRow>> get_secret_id_by_accessor(
      const std::vector<std::uint8_t>& accessor_hash) = 0;
  // Accessors of the role's secret IDs that can still be used, sorted.
  virtual Result<std::vector<std::string>> list_secret_id_accessors(const std::string& role_name) = 0;
  // Destroys a secret ID (its tombstone too). Returns whether a row was deleted.
  virtual Result<bool> delete_secret_id(const std::vector<std::uint8_t>& secret_id_hash) = 0;
  // The atomic login step, one write transaction: checks the secret ID (must belong to
  // `role_name`, else kUnknown), consumes one use, inserts `token` and links it to the secret
  // ID. A used-up limited secret ID is kept as a tombstone until max(its expiry,
  // `tombstone_until`); presenting it again gives kReplayed and revokes every token it produced.
  // Two concurrent calls with a single-use secret ID: exactly one gets kIssued.
  virtual Result<SecretIdUse> use_secret_id(const std::vector<std::uint8_t>& secret_id_hash,
                                            const std::string& role_name, std::int64_t now,
                                            std::int64_t tombstone_until, const TokenRow& token) = 0;
  // Deletes secret IDs (and tombstones) with 0 < expires_at <= now. Returns how many.
  virtual Result<std::uint64_t> delete_expired_secret_ids(std::int64_t now) = 0;

  // --- response wrapping ---
  // Inserts the wrapping token and its response in one transaction.
  virtual Status insert_wrapped_response(const TokenRow& token, const WrappedResponseRow& row) = 0;
  virtual Result<std::optional<WrappedResponseRow>> get_wrapped_response(
      const std::vector<std::uint8_t>& token_hash) = 0;
  // Unwrap: returns the response and deletes it with its wrapping token, in one transaction.
  // Two concurrent calls: exactly one gets the row, the other nullopt.
  virtual Result<std::optional<WrappedResponseRow>> take_wrapped_response(
      const std::vector<std::uint8_t>& token_hash) = 0;
  // Rewrap: deletes the old wrapping token (and response) and inserts the new ones, in one
  // transaction. Returns false (and changes nothing) when the old token is already gone.
  virtual Result<bool> replace_wrapped_response(const std::vector<std::uint8_t>& old_token_hash,
                                                const TokenRow& token, const WrappedResponseRow& row) = 0;

  // --- request nonces ---
  // Records (scope, nonce) until expires_at. Returns false when it is already recorded (a
  // replay); the check and the insert are one statement, so concurrent duplicates cannot both
  // get true.
  virtual Result<bool> record_nonce(const std::string& scope, const std::string& nonce,
                                    std::int64_t expires_at) = 0;
  // Deletes nonces with expires_at <= now. Returns how many.
  virtual Result<std::uint64_t> delete_expired_nonces(std::int64_t now) = 0;
};

}  // namespace coffer::storage
