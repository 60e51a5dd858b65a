// Response wrapping (vault-api.md §1.11): a response is sealed by the barrier and stored under a
// new single-use wrapping token; whoever holds that token can unwrap it once, and nobody else can
// read it. The wrapping token and the sealed response are one storage transaction
// (Storage::insert_wrapped_response through TokenStore::create(spec, insert)), so there is never
// a token without its response or a response without its token.
//
// The sealed response's associated data is mount "sys/wrapping/" and path = hex of the wrapping
// token's hash: a sealed response copied or swapped onto another token's row does not open
// (data_loss). A rewrap re-seals the response under the new token's identity.
//
// Wrapping tokens: policies ["response-wrapping"] (a name PolicyStore refuses for user
// policies, so they grant nothing through the ACL), TTL = the wrap TTL, orphan, not renewable,
// not bound to a client certificate (they exist to be handed to another party). They die on
// unwrap, on rewrap, on expiry (the token sweep deletes them and the response with them: the
// foreign key cascades) and on revocation.
//
// Thread-safe: no state of its own beyond references to thread-safe parts, which must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "auth/policy.h"
#include "auth/token_store.h"
#include "common/status.h"
#include "crypto/secret_bytes.h"
#include "crypto/secret_json.h"
#include "storage/barrier.h"
#include "storage/storage.h"

namespace coffer::engines {

inline constexpr std::string_view kWrappingPolicy = auth::kResponseWrappingPolicyName;
inline constexpr char kWrappingMount[] = "sys/wrapping/";
// Vault's answer for every unusable wrapping token (unknown, already unwrapped, expired).
inline constexpr char kInvalidWrappingToken[] = "wrapping token is not valid or does not exist";

// Whether a token is a wrapping token (it holds the response-wrapping policy).
bool is_wrapping_token(const auth::TokenInfo& token);

// What the client gets instead of the response: Vault's wrap_info.
struct WrapInfo {
  crypto::SecretBytes token;     // the wrapping token, shown once
  std::string accessor;
  std::int64_t ttl = 0;          // seconds
  std::int64_t creation_time = 0;  // unix seconds
  std::string creation_path;
  std::string wrapped_accessor;  // accessor of the token / secret ID the response carries, if any
};

// The accessor of what a response envelope carries, for wrap_info.wrapped_accessor: a login or
// token creation's `auth.accessor`, or an AppRole secret ID's `data.secret_id_accessor`; "" when
// it carries neither.
std::string wrapped_accessor_of(const crypto::SecretJson& response);

// sys/wrapping/lookup's answer.
struct WrappedLookup {
  std::string creation_path;
  std::int64_t creation_time = 0;  // unix seconds
  std::int64_t creation_ttl = 0;   // seconds
};

class WrappingEngine {
 public:
  WrappingEngine(storage::Storage& storage, storage::Barrier& barrier, auth::TokenStore& tokens,
                 auth::Clock clock = auth::system_clock_seconds)
      : storage_(storage), barrier_(barrier), tokens_(tokens), clock_(std::move(clock)) {}

  // Seals `response` (the serialised response envelope) under a new wrapping token with the given
  // TTL. `wrapped_accessor` (wrapped_accessor_of the response) is only echoed in the WrapInfo;
  // a rewrap derives it again from the sealed response. Errors: invalid_argument (ttl < 1,
  // empty creation path), resource_exhausted (DEK limit), crypto and storage errors.
  Result<WrapInfo> wrap(const crypto::SecretBytes& response, const std::string& creation_path, std::int64_t ttl,
                        std::string wrapped_accessor = {});

  // Exactly once: takes the response and deletes its wrapping token in one transaction, then
  // opens it. Of many concurrent unwraps of one token, one succeeds. Errors: invalid_argument
  // kInvalidWrappingToken (unknown, already unwrapped, expired, or not a wrapping token),
  // data_loss (the sealed response fails authentication: tampered with or moved; the token is
  // consumed all the same), storage errors.
  Result<crypto::SecretBytes> unwrap(std::string_view wrapping_token);

  // Creation facts, without consuming anything. Errors: as unwrap() minus data_loss.
  Result<WrappedLookup> lookup(std::string_view wrapping_token);

  // A new wrapping token for the same response, with the original creation TTL and path; the old
  // token is dead afterwards (replace_wrapped_response: atomic, so a concurrent unwrap or rewrap
  // of the old token wins or loses as a whole). Errors: as unwrap().
  Result<WrapInfo> rewrap(std::string_view wrapping_token);

 private:
  // The wrapping token's spec for a TTL and creation path.
  static auth::TokenSpec spec_for(const std::string& creation_path, std::int64_t ttl);
  // The barrier identity of the response owned by `token_hash`.
  static std::string sealed_path(const std::vector<std::uint8_t>& token_hash);
  Result<std::vector<std::uint8_t>> hash_of(std::string_view wrapping_token) const;
  Result<storage::WrappedResponseRow> live_row(const std::vector<std::uint8_t>& token_hash);
  static WrapInfo to_wrap_info(auth::IssuedToken issued, const std::string& creation_path,
                               std::string wrapped_accessor);

  storage::Storage& storage_;
  storage::Barrier& barrier_;
  auth::TokenStore& tokens_;
  auth::Clock clock_;
};

}  // namespace coffer::engines
