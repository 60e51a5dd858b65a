// SqliteStorage: the Storage operations (meta, keyring, secrets, tokens, policies, cert roles)
// and the SQL they run. Every public method takes the connection mutex for its whole body.
#include <algorithm>
#include <limits>

#include "storage/sqlite_internal.h"
#include "storage/sqlite_storage.h"

namespace coffer::storage {
namespace {

// The token tree below the roots that `roots` selects. UNION (not UNION ALL) de-duplicates, so
// a token reached twice (an expired child of an expired parent) counts once and the recursion
// ends even on a corrupted cyclic parent chain.
#define COFFER_TOKEN_TREE(roots)                                                        \
  "WITH RECURSIVE tree(h) AS (" roots                                                   \
  " UNION SELECT t.token_hash FROM tokens t JOIN tree ON t.parent_hash = tree.h) "
#define COFFER_ROOT_BY_HASH "SELECT token_hash FROM tokens WHERE token_hash = ?1"
// At most ?2 expired roots per transaction: a sweep after heavy churn must not hold the write
// lock for seconds (25k tokens took 1.2 s in one go; see bench/token_churn.cpp).
#define COFFER_ROOTS_EXPIRED \
  "SELECT token_hash FROM (SELECT token_hash FROM tokens WHERE expires_at > 0 AND expires_at <= ?1 " \
  "ORDER BY expires_at LIMIT ?2)"
#define COFFER_ROOTS_OF_SECRET_ID \
  "SELECT token_hash FROM approle_secret_id_tokens WHERE secret_id_hash = ?1"
#define COFFER_SECRET_ID_SELECT                                                          \
  "SELECT secret_id_hash, accessor_hash, accessor, role_name, metadata_json, cidrs_json, " \
  "num_uses, uses_left, created_at, expires_at, last_used_at FROM approle_secret_ids "
#define COFFER_TOKEN_SELECT                                                                \
  "SELECT token_hash, accessor_hash, accessor, parent_hash, policies_json, meta_json, "  \
  "display_name, path, bound_cert_fingerprint, issued_at, expires_at, max_expires_at, "  \
  "ttl_seconds, renewable, orphan FROM tokens "

constexpr std::array<const char*, kSqlCount> kSql = {
    /* kBegin */ "BEGIN IMMEDIATE",
    /* kCommit */ "COMMIT",
    /* kRollback */ "ROLLBACK",
    /* kSavepoint */ "SAVEPOINT coffer_write",
    /* kReleaseSavepoint */ "RELEASE coffer_write",
    /* kRollbackToSavepoint */ "ROLLBACK TO coffer_write",
    /* kGetMeta */ "SELECT value FROM meta WHERE key = ?1",
    /* kPutMeta */
    "INSERT INTO meta (key, value) VALUES (?1, ?2) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    /* kLoadKeyring */
    "SELECT purpose, version, mechanism, master_key_id, wrapped, created_at, encryptions "
    "FROM keyring ORDER BY purpose, version",
    /* kInsertKeyring */
    "INSERT INTO keyring (purpose, version, mechanism, master_key_id, wrapped, created_at, "
    "encryptions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* kAddEncryptions */
    "UPDATE keyring SET encryptions = encryptions + ?3 WHERE purpose = ?1 AND version = ?2",
    /* kGetSecret */ "SELECT dek_version, sealed, updated_at FROM secrets WHERE mount = ?1 AND path = ?2",
    /* kPutSecret */
    "INSERT INTO secrets (mount, path, dek_version, sealed, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (mount, path) DO UPDATE SET dek_version = excluded.dek_version, "
    "sealed = excluded.sealed, updated_at = excluded.updated_at",
    /* kDeleteSecret */ "DELETE FROM secrets WHERE mount = ?1 AND path = ?2",
    /* kListSecretsFrom */
    "SELECT path FROM secrets WHERE mount = ?1 AND path >= ?2 ORDER BY path",
    /* kListSecretsRange */
    "SELECT path FROM secrets WHERE mount = ?1 AND path >= ?2 AND path < ?3 ORDER BY path",
    /* kInsertToken */
    "INSERT INTO tokens (token_hash, accessor_hash, accessor, parent_hash, policies_json, "
    "meta_json, display_name, path, bound_cert_fingerprint, issued_at, expires_at, "
    "max_expires_at, ttl_seconds, renewable, orphan) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    /* kGetToken */ COFFER_TOKEN_SELECT "WHERE token_hash = ?1",
    /* kGetTokenByAccessor */ COFFER_TOKEN_SELECT "WHERE accessor_hash = ?1",
    /* kUpdateTokenExpiry */ "UPDATE tokens SET expires_at = ?2 WHERE token_hash = ?1",
    /* kCountTokenTree */ COFFER_TOKEN_TREE(COFFER_ROOT_BY_HASH) "SELECT count(*) FROM tree",
    /* kDeleteTokenTree */
    "DELETE FROM tokens WHERE token_hash IN (" COFFER_TOKEN_TREE(COFFER_ROOT_BY_HASH) "SELECT h FROM tree)",
    /* kCountExpiredTrees */ COFFER_TOKEN_TREE(COFFER_ROOTS_EXPIRED) "SELECT count(*) FROM tree",
    /* kDeleteExpiredTrees */
    "DELETE FROM tokens WHERE token_hash IN (" COFFER_TOKEN_TREE(COFFER_ROOTS_EXPIRED) "SELECT h FROM tree)",
    /* kPutPolicy */
    "INSERT INTO policies (name, json) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET json = excluded.json",
    /* kGetPolicy */ "SELECT name, json FROM policies WHERE name = ?1",
    /* kDeletePolicy */ "DELETE FROM policies WHERE name = ?1",
    /* kListPolicies */ "SELECT name FROM policies ORDER BY name",
    /* kPutCertRole */
    "INSERT INTO cert_roles (name, json) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET json = excluded.json",
    /* kGetCertRole */ "SELECT name, json FROM cert_roles WHERE name = ?1",
    /* kDeleteCertRole */ "DELETE FROM cert_roles WHERE name = ?1",
    /* kListCertRoles */ "SELECT name FROM cert_roles ORDER BY name",
    /* kPutApproleRole */
    "INSERT INTO approle_roles (name, role_id, json) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (name) DO UPDATE SET role_id = excluded.role_id, json = excluded.json",
    /* kGetApproleRole */ "SELECT name, role_id, json FROM approle_roles WHERE name = ?1",
    /* kGetApproleRoleByRoleId */ "SELECT name, role_id, json FROM approle_roles WHERE role_id = ?1",
    /* kDeleteApproleRole */ "DELETE FROM approle_roles WHERE name = ?1",
    /* kListApproleRoles */ "SELECT name FROM approle_roles ORDER BY name",
    /* kInsertSecretId */
    "INSERT INTO approle_secret_ids (secret_id_hash, accessor_hash, accessor, role_name, "
    "metadata_json, cidrs_json, num_uses, uses_left, created_at, expires_at, last_used_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    /* kGetSecretId */ COFFER_SECRET_ID_SELECT "WHERE secret_id_hash = ?1",
    /* kGetSecretIdByAccessor */ COFFER_SECRET_ID_SELECT "WHERE accessor_hash = ?1",
    /* kListSecretIdAccessors */
    "SELECT accessor FROM approle_secret_ids WHERE role_name = ?1 AND (num_uses = 0 OR uses_left > 0) "
    "ORDER BY accessor",
    /* kDeleteSecretId */ "DELETE FROM approle_secret_ids WHERE secret_id_hash = ?1",
    // SET expressions all see the row as it was, so `uses_left = 1` means "this is the last use";
    // the tombstone then lives at least until ?3.
    /* kConsumeSecretIdUse */
    "UPDATE approle_secret_ids SET "
    "uses_left = CASE WHEN num_uses > 0 THEN uses_left - 1 ELSE uses_left END, "
    "last_used_at = ?2, "
    "expires_at = CASE WHEN num_uses > 0 AND uses_left = 1 AND (expires_at = 0 OR expires_at < ?3) "
    "THEN ?3 ELSE expires_at END "
    "WHERE secret_id_hash = ?1 AND (num_uses = 0 OR uses_left > 0)",
    /* kLinkSecretIdToken */
    "INSERT INTO approle_secret_id_tokens (secret_id_hash, token_hash) VALUES (?1, ?2)",
    /* kCountSecretIdTokenTrees */ COFFER_TOKEN_TREE(COFFER_ROOTS_OF_SECRET_ID) "SELECT count(*) FROM tree",
    /* kDeleteSecretIdTokenTrees */
    "DELETE FROM tokens WHERE token_hash IN (" COFFER_TOKEN_TREE(COFFER_ROOTS_OF_SECRET_ID) "SELECT h FROM tree)",
    /* kDeleteExpiredSecretIds */ "DELETE FROM approle_secret_ids WHERE expires_at > 0 AND expires_at <= ?1",
    /* kInsertWrapped */
    "INSERT INTO wrapped_responses (token_hash, creation_path, created_at, ttl_seconds, dek_version, sealed) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* kGetWrapped */
    "SELECT creation_path, created_at, ttl_seconds, dek_version, sealed FROM wrapped_responses "
    "WHERE token_hash = ?1",
    /* kDeleteTokenRow */ "DELETE FROM tokens WHERE token_hash = ?1",
    /* kInsertNonce */
    "INSERT INTO request_nonces (scope, nonce, expires_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (scope, nonce) DO NOTHING",
    /* kDeleteExpiredNonces */ "DELETE FROM request_nonces WHERE expires_at <= ?1",
};
// A forgotten entry would leave a null pointer that fails every prepare at open.
static_assert(kSql.back() != nullptr, "sql_text() must have one entry per Sql enumerator");

#undef COFFER_TOKEN_TREE
#undef COFFER_ROOT_BY_HASH
#undef COFFER_ROOTS_EXPIRED
#undef COFFER_TOKEN_SELECT
#undef COFFER_ROOTS_OF_SECRET_ID
#undef COFFER_SECRET_ID_SELECT

Result<std::uint32_t> as_version(std::int64_t v, std::string_view what) {
  if (v <= 0 || v > std::numeric_limits<std::uint32_t>::max()) {
    return Error(Code::data_loss, std::string(what) + " holds an invalid version " + std::to_string(v));
  }
  return static_cast<std::uint32_t>(v);
}

Result<std::int64_t> as_int64(std::uint64_t v, std::string_view what) {
  if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return Error(Code::invalid_argument, std::string(what) + ": value out of range");
  }
  return static_cast<std::int64_t>(v);
}

}  // namespace

const std::array<const char*, kSqlCount>& sql_text() { return kSql; }

bool sql_changes_tokens(int sql) {
  static const std::array<bool, kSqlCount> changes = [] {
    std::array<bool, kSqlCount> out{};
    for (std::size_t i = 0; i < kSqlCount; ++i) {
      const std::string_view text(kSql[i]);
      out[i] = text.find("UPDATE tokens ") != std::string_view::npos ||
               text.find("DELETE FROM tokens ") != std::string_view::npos;
    }
    return out;
  }();
  return sql >= 0 && sql < kSqlCount && changes[static_cast<std::size_t>(sql)];
}

// --- meta ---

Result<std::optional<std::string>> SqliteStorage::get_meta(const std::string& key) {
  const ReadLease reader = read();
  Query q(*this, *reader, kGetMeta, "get_meta");
  q.text(1, key);
  COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(q.text_at(0));
}

Status SqliteStorage::put_meta(const std::string& key, const std::string& value) {
  WriterLock lock(*this);
  return Query(*this, kPutMeta, "put_meta").text(1, key).text(2, value).run();
}

// --- keyring ---

Result<std::vector<KeyringRow>> SqliteStorage::load_keyring() {
  const ReadLease reader = read();
  Query q(*this, *reader, kLoadKeyring, "load_keyring");
  std::vector<KeyringRow> rows;
  while (true) {
    COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
    if (!row) break;
    KeyringRow r;
    r.purpose = q.text_at(0);
    COFFER_ASSIGN_OR_RETURN(r.version, as_version(q.integer_at(1), "a keyring row"));
    r.mechanism = q.text_at(2);
    r.master_key_id = q.text_at(3);
    r.wrapped = q.blob_at(4);
    r.created_at = q.integer_at(5);
    r.encryptions = static_cast<std::uint64_t>(std::max<std::int64_t>(0, q.integer_at(6)));
    rows.push_back(std::move(r));
  }
  return rows;
}

Status SqliteStorage::insert_keyring_row_locked(const KeyringRow& row) {
  COFFER_ASSIGN_OR_RETURN(const std::int64_t encryptions, as_int64(row.encryptions, "encryptions"));
  return Query(*this, kInsertKeyring, "insert_keyring_row")
      .text(1, row.purpose)
      .integer(2, row.version)
      .text(3, row.mechanism)
      .text(4, row.master_key_id)
      .blob(5, row.wrapped)
      .integer(6, row.created_at)
      .integer(7, encryptions)
      .run();
}

Status SqliteStorage::insert_keyring_row(const KeyringRow& row) {
  WriterLock lock(*this);
  return insert_keyring_row_locked(row);
}

Status SqliteStorage::insert_keyring_rows(const std::vector<KeyringRow>& rows) {
  WriterLock lock(*this);
  Transaction tx(*this);
  COFFER_RETURN_IF_ERROR(tx.begin());
  for (const KeyringRow& row : rows) COFFER_RETURN_IF_ERROR(insert_keyring_row_locked(row));
  return tx.commit();
}

Status SqliteStorage::add_encryptions(const std::string& purpose, std::uint32_t version,
                                      std::uint64_t count) {
  COFFER_ASSIGN_OR_RETURN(const std::int64_t n, as_int64(count, "add_encryptions"));
  WriterLock lock(*this);
  Query q(*this, kAddEncryptions, "add_encryptions");
  COFFER_RETURN_IF_ERROR(q.text(1, purpose).integer(2, version).integer(3, n).run());
  if (q.changes() == 0) {
    return Error(Code::not_found, "the keyring has no " + purpose + " v" + std::to_string(version));
  }
  return Status::Ok();
}

// --- secrets ---

Result<std::optional<SecretRecord>> SqliteStorage::get_secret(const std::string& mount,
                                                              const std::string& path) {
  const ReadLease reader = read();
  Query q(*this, *reader, kGetSecret, "get_secret");
  q.text(1, mount).text(2, path);
  COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
  if (!row) return std::optional<SecretRecord>();
  SecretRecord r;
  r.mount = mount;
  r.path = path;
  COFFER_ASSIGN_OR_RETURN(r.dek_version, as_version(q.integer_at(0), "secret " + mount + path));
  r.sealed = q.blob_at(1);
  r.updated_at = q.integer_at(2);
  return std::optional<SecretRecord>(std::move(r));
}

Status SqliteStorage::put_secret(const SecretRecord& record) {
  return grouped([&] {
    return Query(*this, kPutSecret, "put_secret")
        .text(1, record.mount)
        .text(2, record.path)
        .integer(3, record.dek_version)
        .blob(4, record.sealed)
        .integer(5, record.updated_at)
        .run();
  });
}

Result<bool> SqliteStorage::delete_secret(const std::string& mount, const std::string& path) {
  bool deleted = false;
  const Status status = grouped([&] {
    Query q(*this, kDeleteSecret, "delete_secret");
    COFFER_RETURN_IF_ERROR(q.text(1, mount).text(2, path).run());
    deleted = q.changes() > 0;
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return deleted;
}

// Vault LIST semantics with range scans on the (mount, path) primary key instead of LIKE
// (paths may hold '%' and '_'). Paths are compared bytewise (BINARY collation), so the
// descendants of folder F are exactly F <= path < F with its trailing '/' replaced by '0'
// ('/' + 1). When a row reveals a sub-folder "a/", the scan restarts past all of "a/...",
// so the cost is one step per child plus one seek per sub-folder, not one per descendant.
Result<std::vector<std::string>> SqliteStorage::list_secrets(const std::string& mount,
                                                             const std::string& prefix) {
  std::string folder = prefix;
  if (!folder.empty() && folder.back() != '/') folder += '/';
  std::string upper = folder;
  if (!upper.empty()) upper.back() = '0';

  const ReadLease reader = read();
  std::vector<std::string> children;
  std::string from = folder;
  bool more = true;
  while (more) {
    more = false;
    Query q(*this, *reader, folder.empty() ? kListSecretsFrom : kListSecretsRange, "list_secrets");
    q.text(1, mount).text(2, from);
    if (!folder.empty()) q.text(3, upper);
    while (true) {
      COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
      if (!row) break;
      const std::string path = q.text_at(0);
      if (path.size() <= folder.size()) continue;  // the folder name itself is not a child
      const std::string rest = path.substr(folder.size());
      const auto slash = rest.find('/');
      if (slash == std::string::npos) {
        children.push_back(rest);
        continue;
      }
      children.push_back(rest.substr(0, slash + 1));
      from = folder + children.back();
      from.back() = '0';
      more = true;
      break;
    }
  }
  // Already in order by construction; sort and de-duplicate anyway to keep the contract plain.
  std::sort(children.begin(), children.end());
  children.erase(std::unique(children.begin(), children.end()), children.end());
  return children;
}

// --- tokens ---

Status SqliteStorage::insert_token(const TokenRow& row) {
  return grouped([&] { return insert_token_locked(row); });
}

Status SqliteStorage::insert_token_locked(const TokenRow& row) {
  Query q(*this, kInsertToken, "insert_token");
  q.blob(1, row.token_hash).blob(2, row.accessor_hash).text(3, row.accessor);
  if (row.parent_hash) {
    q.blob(4, *row.parent_hash);
  } else {
    q.null(4);
  }
  q.text(5, row.policies_json)
      .text(6, row.meta_json)
      .text(7, row.display_name)
      .text(8, row.path)
      .text(9, row.bound_cert_fingerprint)
      .integer(10, row.issued_at)
      .integer(11, row.expires_at)
      .integer(12, row.max_expires_at)
      .integer(13, row.ttl_seconds)
      .integer(14, row.renewable ? 1 : 0)
      .integer(15, row.orphan ? 1 : 0);
  Status status = q.run();
  if (status.code() == Code::not_found) return status.with_context("the parent token does not exist");
  return status;
}

Result<std::optional<TokenRow>> SqliteStorage::get_token_by(int sql,
                                                            const std::vector<std::uint8_t>& key,
                                                            std::string_view what) {
  const ReadLease reader = read();
  Query q(*this, *reader, sql, what);
  q.blob(1, key);
  COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
  if (!row) return std::optional<TokenRow>();
  TokenRow t;
  t.token_hash = q.blob_at(0);
  t.accessor_hash = q.blob_at(1);
  t.accessor = q.text_at(2);
  if (!q.is_null(3)) t.parent_hash = q.blob_at(3);
  t.policies_json = q.text_at(4);
  t.meta_json = q.text_at(5);
  t.display_name = q.text_at(6);
  t.path = q.text_at(7);
  t.bound_cert_fingerprint = q.text_at(8);
  t.issued_at = q.integer_at(9);
  t.expires_at = q.integer_at(10);
  t.max_expires_at = q.integer_at(11);
  t.ttl_seconds = q.integer_at(12);
  t.renewable = q.integer_at(13) != 0;
  t.orphan = q.integer_at(14) != 0;
  return std::optional<TokenRow>(std::move(t));
}

Result<std::optional<TokenRow>> SqliteStorage::get_token(const std::vector<std::uint8_t>& token_hash) {
  return get_token_by(kGetToken, token_hash, "get_token");
}

Result<std::optional<TokenRow>> SqliteStorage::get_token_by_accessor(
    const std::vector<std::uint8_t>& accessor_hash) {
  return get_token_by(kGetTokenByAccessor, accessor_hash, "get_token_by_accessor");
}

Status SqliteStorage::update_token_expiry(const std::vector<std::uint8_t>& token_hash,
                                          std::int64_t expires_at) {
  return grouped([&] { return update_token_expiry_locked(token_hash, expires_at); });
}

Status SqliteStorage::update_token_expiry_locked(const std::vector<std::uint8_t>& token_hash,
                                                 std::int64_t expires_at) {
  Query q(*this, kUpdateTokenExpiry, "update_token_expiry");
  COFFER_RETURN_IF_ERROR(q.blob(1, token_hash).integer(2, expires_at).run());
  if (q.changes() == 0) return Error(Code::not_found, "update_token_expiry: no such token");
  return Status::Ok();
}

// Counted with the same recursive CTE that deletes, inside one write transaction, because
// sqlite's change counter leaves out rows removed by ON DELETE CASCADE.
Result<std::uint64_t> SqliteStorage::delete_tree(int count_sql, int delete_sql,
                                                 const std::function<void(Query&)>& bind,
                                                 std::string_view what) {
  WriterLock lock(*this);
  Transaction tx(*this);
  COFFER_RETURN_IF_ERROR(tx.begin());
  std::int64_t count = 0;
  {
    Query q(*this, count_sql, what);
    bind(q);
    COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
    if (row) count = q.integer_at(0);
  }
  if (count > 0) {
    Query q(*this, delete_sql, what);
    bind(q);
    COFFER_RETURN_IF_ERROR(q.run());
  }
  COFFER_RETURN_IF_ERROR(tx.commit());
  return static_cast<std::uint64_t>(count);
}

Result<std::uint64_t> SqliteStorage::delete_token_tree(const std::vector<std::uint8_t>& token_hash) {
  return delete_tree(kCountTokenTree, kDeleteTokenTree,
                     [&](Query& q) { q.blob(1, token_hash); }, "delete_token_tree");
}

// In chunks of kSweepChunk expired roots, one transaction each, so that logins and writes get
// the write lock between chunks.
Result<std::uint64_t> SqliteStorage::delete_expired_tokens(std::int64_t now) {
  constexpr std::int64_t kSweepChunk = 1000;
  std::uint64_t total = 0;
  while (true) {
    COFFER_ASSIGN_OR_RETURN(const std::uint64_t n,
                            delete_tree(kCountExpiredTrees, kDeleteExpiredTrees,
                                        [&](Query& q) { q.integer(1, now).integer(2, kSweepChunk); },
                                        "delete_expired_tokens"));
    if (n == 0) return total;
    total += n;
  }
}

// --- policies and cert roles ---

Status SqliteStorage::put_document(int sql, const NamedDocument& doc, std::string_view what) {
  WriterLock lock(*this);
  return Query(*this, sql, what).text(1, doc.name).text(2, doc.json).run();
}

Result<std::optional<NamedDocument>> SqliteStorage::get_document(int sql, const std::string& name,
                                                                 std::string_view what) {
  const ReadLease reader = read();
  Query q(*this, *reader, sql, what);
  q.text(1, name);
  COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
  if (!row) return std::optional<NamedDocument>();
  return std::optional<NamedDocument>(NamedDocument{q.text_at(0), q.text_at(1)});
}

Result<bool> SqliteStorage::delete_document(int sql, const std::string& name,
                                            std::string_view what) {
  WriterLock lock(*this);
  Query q(*this, sql, what);
  COFFER_RETURN_IF_ERROR(q.text(1, name).run());
  return q.changes() > 0;
}

Result<std::vector<std::string>> SqliteStorage::list_documents(int sql, std::string_view what) {
  const ReadLease reader = read();
  Query q(*this, *reader, sql, what);
  std::vector<std::string> names;
  while (true) {
    COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
    if (!row) break;
    names.push_back(q.text_at(0));
  }
  return names;
}

Status SqliteStorage::put_policy(const NamedDocument& doc) {
  return put_document(kPutPolicy, doc, "put_policy");
}
Result<std::optional<NamedDocument>> SqliteStorage::get_policy(const std::string& name) {
  return get_document(kGetPolicy, name, "get_policy");
}
Result<bool> SqliteStorage::delete_policy(const std::string& name) {
  return delete_document(kDeletePolicy, name, "delete_policy");
}
Result<std::vector<std::string>> SqliteStorage::list_policies() {
  return list_documents(kListPolicies, "list_policies");
}

Status SqliteStorage::put_cert_role(const NamedDocument& doc) {
  return put_document(kPutCertRole, doc, "put_cert_role");
}
Result<std::optional<NamedDocument>> SqliteStorage::get_cert_role(const std::string& name) {
  return get_document(kGetCertRole, name, "get_cert_role");
}
Result<bool> SqliteStorage::delete_cert_role(const std::string& name) {
  return delete_document(kDeleteCertRole, name, "delete_cert_role");
}
Result<std::vector<std::string>> SqliteStorage::list_cert_roles() {
  return list_documents(kListCertRoles, "list_cert_roles");
}

}  // namespace coffer::storage
