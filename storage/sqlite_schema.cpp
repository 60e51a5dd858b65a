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
};

}  // namespace

std::span<const Migration> schema_migrations() { return kMigrations; }

int latest_schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

}  // namespace coffer::storage
