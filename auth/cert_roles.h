// Cert auth roles (Vault's "certificate entries", auth/cert/certs/:name; vault-api.md §1.5) and
// the login-time match of a client certificate against them.
//
// Each role's trusted certificates are parsed once into crypto::TrustAnchors when the role is
// loaded or written, never per login. Roles live in storage as normalised JSON; the in-memory
// set is an immutable snapshot swapped on every write, so logins never wait on an admin write.
//
// Vault fields coffer does not implement but which would *restrict* logins (required_extensions,
// token_bound_cidrs, allowed_names, ocsp_enabled, token_num_uses, token_period, batch tokens)
// are refused when set, rather than silently ignored: ignoring them would let in certificates
// the operator meant to keep out. Other unknown fields are ignored, as Vault does.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "crypto/x509.h"
#include "storage/storage.h"

namespace coffer::auth {

struct CertRole {
  std::string name;
  std::string certificate;  // PEM: CA certificate(s), or the leaf itself if self-signed
  std::vector<std::string> allowed_common_names;  // go-glob patterns; empty = any
  std::vector<std::string> allowed_dns_sans;
  std::vector<std::string> allowed_email_sans;
  std::vector<std::string> allowed_uri_sans;
  std::vector<std::string> allowed_organizational_units;
  std::vector<std::string> token_policies;  // lowercased, sorted, de-duplicated
  std::int64_t token_ttl = 0;               // seconds, 0 = the token store's default
  std::int64_t token_max_ttl = 0;           // seconds, 0 = the system maximum
  std::int64_t token_explicit_max_ttl = 0;  // hard cap, 0 = none
  bool token_no_default_policy = false;     // do not attach "default" to issued tokens
  std::string display_name;                 // defaults to the role name, as in Vault

  // The cap to put on issued tokens: the smaller non-zero of token_max_ttl and
  // token_explicit_max_ttl, or 0.
  std::int64_t effective_max_ttl() const;
};

// What a successful login matched, with Vault's token metadata for cert logins
// (cert_name, common_name, serial_number, subject_key_id, authority_key_id).
struct MatchedRole {
  CertRole role;
  std::map<std::string, std::string> metadata;
};

// go-glob (github.com/ryanuber/go-glob) semantics: '*' matches any run of characters,
// case-sensitive, leftmost-first matching of the literal parts.
bool glob_match(std::string_view pattern, std::string_view subject);

// Vault's message for "no role's trusted certificates verify this client certificate".
inline constexpr std::string_view kInvalidCertificate =
    "invalid certificate or no client certificate supplied";
// Vault's message for "a chain verified, but no role's constraints accept this certificate".
inline constexpr std::string_view kNoMatchingConstraints =
    "no chain matching all constraints could be found for this login certificate";

class CertRoleStore {
 public:
  // Loads every stored role and builds its trust anchors. A stored role that no longer parses is
  // skipped (it cannot match, so logins through it fail closed) and reported in
  // load_warnings(). Errors: storage errors.
  static Result<std::unique_ptr<CertRoleStore>> load(storage::Storage& storage);

  CertRoleStore(const CertRoleStore&) = delete;
  CertRoleStore& operator=(const CertRoleStore&) = delete;

  // Re-reads all roles from storage (e.g. after an offline `cofferctl` change).
  Status reload();
  const std::vector<std::string>& load_warnings() const { return warnings_; }

  // Vault's POST auth/cert/certs/:name with its parsed body (a JSON object). Updating an existing
  // role changes only the fields given. Errors: invalid_argument with a message fit for a 400
  // (bad name, body not an object, missing or unparseable certificate, a private key in the
  // PEM, bad field types, unsupported restricting fields), storage errors.
  Status write(std::string_view name, const nlohmann::json& body);
  // The same from the raw body text ("" = {}). Errors: also invalid_argument for bad JSON.
  Status write_text(std::string_view name, std::string_view json_body);
  // Vault's GET shape (the `data` object). Errors: not_found.
  Result<nlohmann::json> read(std::string_view name) const;
  Result<CertRole> get(std::string_view name) const;
  // Deleting a missing role succeeds (Vault answers 204). Errors: invalid_argument (bad name),
  // storage errors.
  Status remove(std::string_view name);
  // Sorted role names.
  std::vector<std::string> list() const;

  // Matches a client certificate (already parsed, with its DER and the chain the client sent,
  // leaf excluded) against one role (`role_name`) or all roles in name order, first match wins.
  // A role matches when the chain verifies to one of its trusted certificates (validity checked
  // at now) and every non-empty allowed_* list has a glob matching the certificate.
  // Errors: invalid_argument with kInvalidCertificate (no role's anchors verify the chain, or the
  // named role does not exist) or kNoMatchingConstraints (a chain verified but constraints
  // failed). When `why` is given it receives per-role reasons for the logs (never for clients).
  Result<MatchedRole> match(const crypto::CertificateInfo& leaf, crypto::ByteView leaf_der,
                            const std::vector<std::vector<std::uint8_t>>& chain_der,
                            const std::optional<std::string>& role_name,
                            std::string* why = nullptr) const;

  static Status validate_name(std::string_view name);

 private:
  struct Entry {
    CertRole role;
    crypto::TrustAnchors anchors;
  };
  using Snapshot = std::map<std::string, Entry, std::less<>>;

  explicit CertRoleStore(storage::Storage& storage) : storage_(storage) {}
  std::shared_ptr<const Snapshot> snapshot() const;

  storage::Storage& storage_;
  mutable std::mutex mu_;      // guards roles_ (the pointer, not the snapshot it points to)
  std::mutex write_mu_;        // serialises read-modify-write of role documents
  std::shared_ptr<const Snapshot> roles_ = std::make_shared<const Snapshot>();
  std::vector<std::string> warnings_;
};

}  // namespace coffer::auth
