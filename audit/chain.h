// The audit chain's shared definitions, used by the writer (audit_log) and the verifier (verify):
// how a record's hash is taken, how a checkpoint MAC is computed, the key derivation for it, and
// the database meta key holding the chain head. One place, so writer and verifier cannot drift.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::audit {

// HKDF info for the checkpoint MAC key, derived from the keyring's audit-HMAC key.
inline constexpr char kCheckpointInfo[] = "coffer audit-checkpoint v1";
// Meta key in the database: {"seq":N,"hash":"<hex>","state":"running"|"stopped"}.
inline constexpr char kHeadMetaKey[] = "audit_chain_head";
// `prev` of the very first record.
inline constexpr char kGenesisHash[] = "0000000000000000000000000000000000000000000000000000000000000000";

// Lower-case hex SHA-256 of one record's line (its bytes without the trailing '\n').
std::string line_hash(std::string_view line);

// The checkpoint MAC key: HKDF-SHA256(audit_hmac_key, info = kCheckpointInfo). Errors: internal.
Result<crypto::SecretBytes> derive_checkpoint_key(const crypto::SecretBytes& audit_hmac_key);

// hex HMAC-SHA256(key, "coffer-audit-checkpoint\n<seq>\n<prev>\n<reason>"): binds the checkpoint's
// own position (seq) to the hash of every record before it (prev). Errors: internal.
Result<std::string> checkpoint_mac(const crypto::SecretBytes& key, std::uint64_t seq, std::string_view prev,
                                   std::string_view reason);

// The stored chain head.
struct Head {
  std::uint64_t seq = 0;      // 0 = no record yet
  std::string hash = kGenesisHash;
  bool stopped = false;       // the daemon wrote its shutdown checkpoint and stopped
};
std::string encode_head(const Head& head);
// Errors: data_loss when the stored text is malformed.
Result<Head> decode_head(std::string_view text);

}  // namespace coffer::audit
