// Schema migrations for SqliteStorage (see sqlite_schema.h for the rules).
//
// Why the shapes below:
// - secrets: (mount, path) is the identity and the primary key; a PK index on TEXT with the
//   default BINARY collation orders paths bytewise, which list_secrets() relies on for its
//   range scans (no LIKE: paths may contain '%' and '_').
// - tokens: parent_hash references the parent with ON DELETE CASCADE, so a child can never
//   outlive its parent even if a caller deletes a parent row directly; delete_token_tree()
//   also deletes the tree explicitly (recursive CTE) to count it.
// - Every column that stores bytes of a key or ciphertext is a BLOB; nothing here is secret
//   in clear (the barrier and the keyring see to that).
#include "storage/sqlite_schema.h"

namespace coffer::storage {
namespace {

constexpr Migration kMigrations[] = {
    {1, "initial schema", R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
);
CREATE TABLE keyring (
  purpose       TEXT NOT NULL,
  version       INTEGER NOT NULL CHECK (version > 0),
  mechanism     TEXT NOT NULL,
  master_key_id TEXT NOT NULL,
  wrapped       BLOB NOT NULL,
  created_at    INTEGER NOT NULL,
  encryptions   INTEGER NOT NULL DEFAULT 0 CHECK (encryptions >= 0),
  PRIMARY KEY (purpose, version)
);
CREATE TABLE secrets (
  mount       TEXT NOT NULL,
  path        TEXT NOT NULL,
  dek_version INTEGER NOT NULL CHECK (dek_version > 0),
  sealed      BLOB NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (mount, path)
);
CREATE TABLE tokens (
  token_hash             BLOB PRIMARY KEY NOT NULL,
  accessor_hash          BLOB NOT NULL UNIQUE,
  accessor               TEXT NOT NULL,
  parent_hash            BLOB NULL REFERENCES tokens (token_hash) ON DELETE CASCADE,
  policies_json          TEXT NOT NULL,
  meta_json              TEXT NOT NULL,
  display_name           TEXT NOT NULL,
  path                   TEXT NOT NULL,
  bound_cert_fingerprint TEXT NOT NULL,
  issued_at              INTEGER NOT NULL,
  expires_at             INTEGER NOT NULL,
  max_expires_at         INTEGER NOT NULL,
  ttl_seconds            INTEGER NOT NULL,
  renewable              INTEGER NOT NULL CHECK (renewable IN (0, 1)),
  orphan                 INTEGER NOT NULL CHECK (orphan IN (0, 1))
);
-- The foreign key's child side: without it every parent delete scans the whole table.
CREATE INDEX tokens_by_parent ON tokens (parent_hash);
-- The expiry sweep only looks at tokens that expire (root tokens have expires_at = 0).
CREATE INDEX tokens_by_expiry ON tokens (expires_at) WHERE expires_at > 0;
CREATE TABLE policies (
  name TEXT PRIMARY KEY NOT NULL,
  json TEXT NOT NULL
);
CREATE TABLE cert_roles (
  name TEXT PRIMARY KEY NOT NULL,
  json TEXT NOT NULL
);
)sql"},
    {2, "approle, response wrapping and request nonces", R"sql(
-- AppRole roles: the role document (JSON) plus its role_id, unique because login finds the role
-- by it. role_id is an identifier, not a secret (Vault treats it like a username).
CREATE TABLE approle_roles (
  name    TEXT PRIMARY KEY NOT NULL,
  role_id TEXT NOT NULL UNIQUE,
  json    TEXT NOT NULL
);
-- Secret IDs: only keyed hashes are stored, like tokens. uses_left counts down for limited
-- secret IDs (num_uses > 0); a used-up row stays as a tombstone (uses_left = 0) until
-- expires_at, so that a second use is recognised as a replay rather than as an unknown ID.
CREATE TABLE approle_secret_ids (
  secret_id_hash BLOB PRIMARY KEY NOT NULL,
  accessor_hash  BLOB NOT NULL UNIQUE,
  accessor       TEXT NOT NULL,
  role_name      TEXT NOT NULL REFERENCES approle_roles (name) ON DELETE CASCADE,
  metadata_json  TEXT NOT NULL,
  cidrs_json     TEXT NOT NULL,
  num_uses       INTEGER NOT NULL CHECK (num_uses >= 0),
  uses_left      INTEGER NOT NULL CHECK (uses_left >= 0),
  created_at     INTEGER NOT NULL,
  expires_at     INTEGER NOT NULL,
  last_used_at   INTEGER NOT NULL
);
CREATE INDEX approle_secret_ids_by_role ON approle_secret_ids (role_name);
CREATE INDEX approle_secret_ids_by_expiry ON approle_secret_ids (expires_at) WHERE expires_at > 0;
-- Which tokens each secret ID produced, so that a replay can revoke them. Both sides cascade:
-- a revoked token or a destroyed secret ID takes its link rows with it.
CREATE TABLE approle_secret_id_tokens (
  secret_id_hash BLOB NOT NULL REFERENCES approle_secret_ids (secret_id_hash) ON DELETE CASCADE,
  token_hash     BLOB NOT NULL REFERENCES tokens (token_hash) ON DELETE CASCADE,
  PRIMARY KEY (secret_id_hash, token_hash)
);
CREATE INDEX approle_secret_id_tokens_by_token ON approle_secret_id_tokens (token_hash);
-- Response wrapping: the wrapped response, sealed by the barrier, hangs off its single-use
-- wrapping token and disappears with it (unwrap, expiry sweep or revocation).
CREATE TABLE wrapped_responses (
  token_hash    BLOB PRIMARY KEY NOT NULL REFERENCES tokens (token_hash) ON DELETE CASCADE,
  creation_path TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  ttl_seconds   INTEGER NOT NULL,
  dek_version   INTEGER NOT NULL CHECK (dek_version > 0),
  sealed        BLOB NOT NULL
);
-- Request nonces (X-Coffer-Nonce), per caller scope, kept until their window has passed.
CREATE TABLE request_nonces (
  scope      TEXT NOT NULL,
  nonce      TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (scope, nonce)
);
CREATE INDEX request_nonces_by_expiry ON request_nonces (expires_at);
)sql"},
};

}  // namespace

std::span<const Migration> schema_migrations() { return kMigrations; }

int latest_schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

}  // namespace coffer::storage
