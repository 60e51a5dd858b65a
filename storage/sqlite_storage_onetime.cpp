// SqliteStorage: AppRole roles and secret IDs, response-wrapped responses and request nonces —
// the one-time credentials. Every "use once" operation is a single write transaction (BEGIN
// IMMEDIATE takes the write lock first), so two concurrent uses serialise and exactly one wins.
#include "storage/sqlite_internal.h"
#include "storage/sqlite_storage.h"

namespace coffer::storage {

// --- AppRole roles ---

Status SqliteStorage::put_approle_role(const ApproleRoleRow& row) {
  WriterLock lock(*this);
  Status st = Query(*this, kPutApproleRole, "put_approle_role")
                  .text(1, row.name)
                  .text(2, row.role_id)
                  .text(3, row.json)
                  .run();
  if (st.code() == Code::already_exists) return Error(Code::already_exists, "role_id is already in use by another role");
  return st;
}

Result<std::optional<ApproleRoleRow>> SqliteStorage::get_approle_role_by(int sql, const std::string& key,
                                                                         std::string_view what) {
  const ReadLease reader = read();
  Query q(*this, *reader, sql, what);
  q.text(1, key);
  COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
  if (!row) return std::optional<ApproleRoleRow>();
  return std::optional<ApproleRoleRow>(ApproleRoleRow{q.text_at(0), q.text_at(1), q.text_at(2)});
}

Result<std::optional<ApproleRoleRow>> SqliteStorage::get_approle_role(const std::string& name) {
  return get_approle_role_by(kGetApproleRole, name, "get_approle_role");
}

Result<std::optional<ApproleRoleRow>> SqliteStorage::get_approle_role_by_role_id(const std::string& role_id) {
  return get_approle_role_by(kGetApproleRoleByRoleId, role_id, "get_approle_role_by_role_id");
}

Result<bool> SqliteStorage::delete_approle_role(const std::string& name) {
  return delete_document(kDeleteApproleRole, name, "delete_approle_role");
}

Result<std::vector<std::string>> SqliteStorage::list_approle_roles() {
  return list_documents(kListApproleRoles, "list_approle_roles");
}

// --- secret IDs ---

Status SqliteStorage::insert_secret_id(const SecretIdRow& row) {
  WriterLock lock(*this);
  Status st = Query(*this, kInsertSecretId, "insert_secret_id")
                  .blob(1, row.secret_id_hash)
                  .blob(2, row.accessor_hash)
                  .text(3, row.accessor)
                  .text(4, row.role_name)
                  .text(5, row.metadata_json)
                  .text(6, row.cidrs_json)
                  .integer(7, row.num_uses)
                  .integer(8, row.uses_left)
                  .integer(9, row.created_at)
                  .integer(10, row.expires_at)
                  .integer(11, row.last_used_at)
                  .run();
  if (st.code() == Code::not_found) return st.with_context("the role does not exist");
  return st;
}

Result<std::optional<SecretIdRow>> SqliteStorage::get_secret_id_by(Reader* reader, int sql,
                                                                   const std::vector<std::uint8_t>& key,
                                                                   std::string_view what) {
  Query q(*this, reader, sql, what);
  q.blob(1, key);
  COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
  if (!row) return std::optional<SecretIdRow>();
  SecretIdRow r;
  r.secret_id_hash = q.blob_at(0);
  r.accessor_hash = q.blob_at(1);
  r.accessor = q.text_at(2);
  r.role_name = q.text_at(3);
  r.metadata_json = q.text_at(4);
  r.cidrs_json = q.text_at(5);
  r.num_uses = q.integer_at(6);
  r.uses_left = q.integer_at(7);
  r.created_at = q.integer_at(8);
  r.expires_at = q.integer_at(9);
  r.last_used_at = q.integer_at(10);
  return std::optional<SecretIdRow>(std::move(r));
}

Result<std::optional<SecretIdRow>> SqliteStorage::get_secret_id(const std::vector<std::uint8_t>& secret_id_hash) {
  const ReadLease reader = read();
  return get_secret_id_by(reader.get(), kGetSecretId, secret_id_hash, "get_secret_id");
}

Result<std::optional<SecretIdRow>> SqliteStorage::get_secret_id_by_accessor(
    const std::vector<std::uint8_t>& accessor_hash) {
  const ReadLease reader = read();
  return get_secret_id_by(reader.get(), kGetSecretIdByAccessor, accessor_hash, "get_secret_id_by_accessor");
}

Result<std::vector<std::string>> SqliteStorage::list_secret_id_accessors(const std::string& role_name) {
  const ReadLease reader = read();
  Query q(*this, *reader, kListSecretIdAccessors, "list_secret_id_accessors");
  q.text(1, role_name);
  std::vector<std::string> accessors;
  while (true) {
    COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
    if (!row) break;
    accessors.push_back(q.text_at(0));
  }
  return accessors;
}

Result<bool> SqliteStorage::delete_secret_id(const std::vector<std::uint8_t>& secret_id_hash) {
  WriterLock lock(*this);
  Query q(*this, kDeleteSecretId, "delete_secret_id");
  COFFER_RETURN_IF_ERROR(q.blob(1, secret_id_hash).run());
  return q.changes() > 0;
}

// Read, decide and write inside one BEGIN IMMEDIATE transaction under the connection mutex:
// no other connection (another cofferd on the same file, cofferctl) can slip a use in between.
Result<SecretIdUse> SqliteStorage::use_secret_id(const std::vector<std::uint8_t>& secret_id_hash,
                                                 const std::string& role_name, std::int64_t now,
                                                 std::int64_t tombstone_until, const TokenRow& token) {
  WriterLock lock(*this);
  Transaction tx(*this);
  COFFER_RETURN_IF_ERROR(tx.begin());
  SecretIdUse use;
  {
    COFFER_ASSIGN_OR_RETURN(auto found, get_secret_id_by(nullptr, kGetSecretId, secret_id_hash, "use_secret_id"));
    if (!found || found->role_name != role_name) {
      use.outcome = SecretIdUseOutcome::kUnknown;
      return use;  // nothing written: the transaction rolls back
    }
    use.row = std::move(*found);
  }
  if (use.row.num_uses > 0 && use.row.uses_left <= 0) {
    use.outcome = SecretIdUseOutcome::kReplayed;
    std::int64_t count = 0;
    {
      Query q(*this, kCountSecretIdTokenTrees, "use_secret_id (replay)");
      q.blob(1, secret_id_hash);
      COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
      if (row) count = q.integer_at(0);
    }
    if (count > 0) {
      COFFER_RETURN_IF_ERROR(Query(*this, kDeleteSecretIdTokenTrees, "use_secret_id (replay)")
                                 .blob(1, secret_id_hash)
                                 .run());
    }
    COFFER_RETURN_IF_ERROR(tx.commit());
    use.revoked_tokens = static_cast<std::uint64_t>(count);
    return use;
  }
  if (use.row.expires_at > 0 && use.row.expires_at <= now) {
    use.outcome = SecretIdUseOutcome::kExpired;
    return use;
  }
  {
    Query q(*this, kConsumeSecretIdUse, "use_secret_id");
    COFFER_RETURN_IF_ERROR(q.blob(1, secret_id_hash).integer(2, now).integer(3, tombstone_until).run());
    if (q.changes() != 1) return Error(Code::internal, "use_secret_id: the secret ID changed under the write lock");
  }
  COFFER_RETURN_IF_ERROR(insert_token_locked(token));
  COFFER_RETURN_IF_ERROR(Query(*this, kLinkSecretIdToken, "use_secret_id")
                             .blob(1, secret_id_hash)
                             .blob(2, token.token_hash)
                             .run());
  COFFER_RETURN_IF_ERROR(tx.commit());
  use.outcome = SecretIdUseOutcome::kIssued;
  return use;
}

Result<std::uint64_t> SqliteStorage::delete_expired_secret_ids(std::int64_t now) {
  WriterLock lock(*this);
  Query q(*this, kDeleteExpiredSecretIds, "delete_expired_secret_ids");
  COFFER_RETURN_IF_ERROR(q.integer(1, now).run());
  return static_cast<std::uint64_t>(q.changes());
}

// --- response wrapping ---

Status SqliteStorage::insert_wrapped_locked(const TokenRow& token, const WrappedResponseRow& row) {
  if (row.token_hash != token.token_hash) {
    return Error(Code::invalid_argument, "insert_wrapped_response: the response must belong to the wrapping token");
  }
  COFFER_RETURN_IF_ERROR(insert_token_locked(token));
  return Query(*this, kInsertWrapped, "insert_wrapped_response")
      .blob(1, row.token_hash)
      .text(2, row.creation_path)
      .integer(3, row.created_at)
      .integer(4, row.ttl_seconds)
      .integer(5, row.dek_version)
      .blob(6, row.sealed)
      .run();
}

Status SqliteStorage::insert_wrapped_response(const TokenRow& token, const WrappedResponseRow& row) {
  WriterLock lock(*this);
  Transaction tx(*this);
  COFFER_RETURN_IF_ERROR(tx.begin());
  COFFER_RETURN_IF_ERROR(insert_wrapped_locked(token, row));
  return tx.commit();
}

Result<std::optional<WrappedResponseRow>> SqliteStorage::get_wrapped_locked(
    Reader* reader, const std::vector<std::uint8_t>& token_hash) {
  Query q(*this, reader, kGetWrapped, "get_wrapped_response");
  q.blob(1, token_hash);
  COFFER_ASSIGN_OR_RETURN(const bool row, q.step());
  if (!row) return std::optional<WrappedResponseRow>();
  WrappedResponseRow r;
  r.token_hash = token_hash;
  r.creation_path = q.text_at(0);
  r.created_at = q.integer_at(1);
  r.ttl_seconds = q.integer_at(2);
  const std::int64_t v = q.integer_at(3);
  if (v <= 0 || v > 0xffffffffLL) return Error(Code::data_loss, "a wrapped response holds an invalid DEK version");
  r.dek_version = static_cast<std::uint32_t>(v);
  r.sealed = q.blob_at(4);
  return std::optional<WrappedResponseRow>(std::move(r));
}

Result<std::optional<WrappedResponseRow>> SqliteStorage::get_wrapped_response(
    const std::vector<std::uint8_t>& token_hash) {
  const ReadLease reader = read();
  return get_wrapped_locked(reader.get(), token_hash);
}

Result<std::optional<WrappedResponseRow>> SqliteStorage::take_wrapped_response(
    const std::vector<std::uint8_t>& token_hash) {
  WriterLock lock(*this);
  Transaction tx(*this);
  COFFER_RETURN_IF_ERROR(tx.begin());
  COFFER_ASSIGN_OR_RETURN(auto row, get_wrapped_locked(nullptr, token_hash));
  if (!row) return row;
  // The token row's delete cascades to the response (and to any child, of which a wrapping
  // token has none).
  COFFER_RETURN_IF_ERROR(Query(*this, kDeleteTokenRow, "take_wrapped_response").blob(1, token_hash).run());
  COFFER_RETURN_IF_ERROR(tx.commit());
  return row;
}

Result<bool> SqliteStorage::replace_wrapped_response(const std::vector<std::uint8_t>& old_token_hash,
                                                     const TokenRow& token, const WrappedResponseRow& row) {
  WriterLock lock(*this);
  Transaction tx(*this);
  COFFER_RETURN_IF_ERROR(tx.begin());
  COFFER_ASSIGN_OR_RETURN(const auto old, get_wrapped_locked(nullptr, old_token_hash));
  if (!old) return false;
  COFFER_RETURN_IF_ERROR(Query(*this, kDeleteTokenRow, "replace_wrapped_response").blob(1, old_token_hash).run());
  COFFER_RETURN_IF_ERROR(insert_wrapped_locked(token, row));
  COFFER_RETURN_IF_ERROR(tx.commit());
  return true;
}

// --- request nonces ---

Result<bool> SqliteStorage::record_nonce(const std::string& scope, const std::string& nonce,
                                         std::int64_t expires_at) {
  WriterLock lock(*this);
  Query q(*this, kInsertNonce, "record_nonce");
  COFFER_RETURN_IF_ERROR(q.text(1, scope).text(2, nonce).integer(3, expires_at).run());
  return q.changes() == 1;
}

Result<std::uint64_t> SqliteStorage::delete_expired_nonces(std::int64_t now) {
  WriterLock lock(*this);
  Query q(*this, kDeleteExpiredNonces, "delete_expired_nonces");
  COFFER_RETURN_IF_ERROR(q.integer(1, now).run());
  return static_cast<std::uint64_t>(q.changes());
}

}  // namespace coffer::storage
