// Record hashing, checkpoint MACs and the stored head (see chain.h).
#include "audit/chain.h"

#include <nlohmann/json.hpp>

#include "crypto/encoding.h"
#include "crypto/mac.h"

namespace coffer::audit {

std::string line_hash(std::string_view line) { return crypto::to_hex(crypto::sha256(crypto::as_bytes(line))); }

Result<crypto::SecretBytes> derive_checkpoint_key(const crypto::SecretBytes& audit_hmac_key) {
  return crypto::hkdf_sha256(audit_hmac_key, {}, kCheckpointInfo, 32);
}

Result<std::string> checkpoint_mac(const crypto::SecretBytes& key, std::uint64_t seq, std::string_view prev,
                                   std::string_view reason) {
  std::string msg = "coffer-audit-checkpoint\n" + std::to_string(seq) + "\n";
  msg.append(prev);
  msg += "\n";
  msg.append(reason);
  COFFER_ASSIGN_OR_RETURN(auto mac, crypto::hmac_sha256(key, crypto::as_bytes(msg)));
  return crypto::to_hex(mac);
}

std::string encode_head(const Head& head) {
  nlohmann::json j{{"seq", head.seq}, {"hash", head.hash}, {"state", head.stopped ? "stopped" : "running"}};
  return j.dump();
}

Result<Head> decode_head(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() ||
      !j.contains("hash") || !j["hash"].is_string() || !j.contains("state") || !j["state"].is_string()) {
    return Error(Code::data_loss, "the audit chain head stored in the database is malformed");
  }
  Head h;
  h.seq = j["seq"].get<std::uint64_t>();
  h.hash = j["hash"].get<std::string>();
  h.stopped = j["state"].get<std::string>() == "stopped";
  return h;
}

}  // namespace coffer::audit
