// Response wrapping: wrap, unwrap (exactly once), lookup and rewrap over the token store, the
// barrier and the one-time-credential storage calls (see wrapping.h).
#include "engines/wrapping.h"

#include <algorithm>

#include "crypto/encoding.h"

namespace coffer::engines {
namespace {

Status invalid_token() { return Error(Code::invalid_argument, kInvalidWrappingToken); }

// The stored form of a response sealed for the wrapping token `token`.
storage::WrappedResponseRow wrapped_row(const storage::TokenRow& token, const std::string& creation_path,
                                        storage::Barrier::Sealed sealed) {
  storage::WrappedResponseRow w;
  w.token_hash = token.token_hash;
  w.creation_path = creation_path;
  w.created_at = token.issued_at;
  w.ttl_seconds = token.ttl_seconds;
  w.dek_version = sealed.dek_version;
  w.sealed = std::move(sealed.bytes);
  return w;
}

}  // namespace

bool is_wrapping_token(const auth::TokenInfo& token) {
  return std::find(token.policies.begin(), token.policies.end(), kWrappingPolicy) != token.policies.end();
}

auth::TokenSpec WrappingEngine::spec_for(const std::string& creation_path, std::int64_t ttl) {
  auth::TokenSpec spec;
  spec.policies = {std::string(kWrappingPolicy)};
  spec.display_name = std::string(kWrappingPolicy);
  spec.path = creation_path;
  spec.ttl = ttl;
  spec.max_ttl = ttl;      // never renewed past its wrap TTL
  spec.renewable = false;
  // No parent (an orphan: revoking the requester must not destroy what it handed over) and no
  // certificate binding (it is meant for another party).
  return spec;
}

std::string WrappingEngine::sealed_path(const std::vector<std::uint8_t>& token_hash) {
  return crypto::to_hex(token_hash);
}

Result<std::vector<std::uint8_t>> WrappingEngine::hash_of(std::string_view wrapping_token) const {
  auto h = tokens_.token_hash(wrapping_token);
  if (!h.ok() && h.status().code() == Code::permission_denied) return invalid_token();  // empty or oversized
  return h;
}

WrapInfo WrappingEngine::to_wrap_info(auth::IssuedToken issued, const std::string& creation_path,
                                      std::string wrapped_accessor) {
  WrapInfo info;
  info.token = std::move(issued.token);
  info.accessor = issued.accessor;
  info.ttl = issued.info.creation_ttl;
  info.creation_time = issued.info.creation_time;
  info.creation_path = creation_path;
  info.wrapped_accessor = std::move(wrapped_accessor);
  return info;
}

Result<WrapInfo> WrappingEngine::wrap(const crypto::SecretBytes& response, const std::string& creation_path,
                                      std::int64_t ttl, std::string wrapped_accessor) {
  if (ttl < 1) return Error(Code::invalid_argument, "a wrapping TTL must be at least 1s");
  if (creation_path.empty()) return Error(Code::invalid_argument, "a wrapped response needs its creation path");
  // The response is sealed inside the insert callback: only there is the new token's hash (the
  // sealed response's identity) known, and the token is handed out only if the insert of both
  // succeeded.
  const auth::TokenStore::InsertToken insert = [&](const storage::TokenRow& row) -> Status {
    COFFER_ASSIGN_OR_RETURN(storage::Barrier::Sealed sealed,
                            barrier_.seal(kWrappingMount, sealed_path(row.token_hash), response));
    return storage_.insert_wrapped_response(row, wrapped_row(row, creation_path, std::move(sealed)));
  };
  COFFER_ASSIGN_OR_RETURN(auth::IssuedToken issued, tokens_.create(spec_for(creation_path, ttl), insert));
  return to_wrap_info(std::move(issued), creation_path, std::move(wrapped_accessor));
}

Result<storage::WrappedResponseRow> WrappingEngine::live_row(const std::vector<std::uint8_t>& token_hash) {
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.get_wrapped_response(token_hash));
  if (!row) return invalid_token();
  if (row->ttl_seconds > 0 && row->created_at + row->ttl_seconds <= clock_()) {
    // Expired but not yet swept: remove it now (the response goes with its token). A failed
    // delete still refuses; the sweep retries.
    auto deleted = storage_.delete_token_tree(token_hash);
    (void)deleted;
    return invalid_token();
  }
  return std::move(*row);
}

Result<crypto::SecretBytes> WrappingEngine::unwrap(std::string_view wrapping_token) {
  COFFER_ASSIGN_OR_RETURN(const auto hash, hash_of(wrapping_token));
  // take_wrapped_response is the one atomic step: of concurrent unwraps exactly one gets the row.
  COFFER_ASSIGN_OR_RETURN(auto row, storage_.take_wrapped_response(hash));
  if (!row) return invalid_token();
  // Expired before the sweep got to it: it was deleted by the take all the same.
  if (row->ttl_seconds > 0 && row->created_at + row->ttl_seconds <= clock_()) return invalid_token();
  auto plain = barrier_.open(kWrappingMount, sealed_path(hash), row->dek_version, row->sealed);
  if (!plain.ok()) {
    return Error(plain.status().code(), "the wrapped response created by " + row->creation_path +
                                            " failed authentication (corrupt, tampered with, or moved from "
                                            "another wrapping token); the wrapping token is consumed");
  }
  return std::move(plain).value();
}

Result<WrappedLookup> WrappingEngine::lookup(std::string_view wrapping_token) {
  COFFER_ASSIGN_OR_RETURN(const auto hash, hash_of(wrapping_token));
  COFFER_ASSIGN_OR_RETURN(const storage::WrappedResponseRow row, live_row(hash));
  return WrappedLookup{row.creation_path, row.created_at, row.ttl_seconds};
}

std::string wrapped_accessor_of(const crypto::SecretJson& response) {
  const auto text = [](const crypto::SecretJson& object, const char* key) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_string()) return std::string();
    const auto& v = it->get_ref<const crypto::SecretString&>();
    return std::string(v.data(), v.size());
  };
  if (!response.is_object()) return {};
  if (auto a = response.find("auth"); a != response.end() && a->is_object()) return text(*a, "accessor");
  if (auto d = response.find("data"); d != response.end() && d->is_object()) return text(*d, "secret_id_accessor");
  return {};
}

Result<WrapInfo> WrappingEngine::rewrap(std::string_view wrapping_token) {
  COFFER_ASSIGN_OR_RETURN(const auto old_hash, hash_of(wrapping_token));
  COFFER_ASSIGN_OR_RETURN(const storage::WrappedResponseRow old, live_row(old_hash));
  auto plain = barrier_.open(kWrappingMount, sealed_path(old_hash), old.dek_version, old.sealed);
  if (!plain.ok()) {
    return Error(plain.status().code(), "the wrapped response created by " + old.creation_path +
                                            " failed authentication (corrupt, tampered with, or moved from "
                                            "another wrapping token)");
  }
  const auth::TokenStore::InsertToken insert = [&](const storage::TokenRow& row) -> Status {
    COFFER_ASSIGN_OR_RETURN(storage::Barrier::Sealed sealed,
                            barrier_.seal(kWrappingMount, sealed_path(row.token_hash), *plain));
    // Atomic: deletes the old token (and response) and inserts the new ones, or, when the old one
    // was unwrapped or rewrapped in the meantime, changes nothing.
    COFFER_ASSIGN_OR_RETURN(const bool replaced, storage_.replace_wrapped_response(
                                                     old_hash, row, wrapped_row(row, old.creation_path, std::move(sealed))));
    return replaced ? Status::Ok() : invalid_token();
  };
  COFFER_ASSIGN_OR_RETURN(auth::IssuedToken issued, tokens_.create(spec_for(old.creation_path, old.ttl_seconds), insert));
  const crypto::SecretJson body = crypto::SecretJson::parse(plain->view(crypto::reveal()), nullptr, false);
  return to_wrap_info(std::move(issued), old.creation_path, wrapped_accessor_of(body));
}

}  // namespace coffer::engines
