#include "daemon/app.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "crypto/encoding.h"
#include "crypto/rsa.h"
#include "hsm/pkcs11_protector.h"
#include "keys/credential_file.h"
#include "tpm/tpm_protector.h"

namespace coffer::daemon {
namespace {

Result<std::string> read_whole_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(Code::not_found, std::string("cannot read ") + what + " " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error(Code::internal, std::string("error reading ") + what + " " + path);
  return ss.str();
}

Result<std::vector<tpm::PcrApproval>> parse_approvals(const std::string& path, const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Error(Code::invalid_argument, "PCR approvals file " + path + ": " + why);
  };
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("not valid JSON");
  if (!j.is_array()) return bad("must be a JSON array of {\"pcrs\", \"digest\", \"signature\"} objects");
  std::vector<tpm::PcrApproval> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const auto& e = j[i];
    const std::string at = "entry " + std::to_string(i) + ": ";
    if (!e.is_object()) return bad(at + "must be an object");
    for (const auto& [key, value] : e.items()) {
      if (key != "pcrs" && key != "digest" && key != "signature") return bad(at + "unknown key \"" + key + "\"");
    }
    tpm::PcrApproval a;
    if (!e.contains("pcrs") || !e["pcrs"].is_array() || e["pcrs"].empty()) {
      return bad(at + "\"pcrs\" must be a non-empty array of PCR numbers");
    }
    for (const auto& n : e["pcrs"]) {
      if (!n.is_number_unsigned() || n.get<std::uint64_t>() > 23) return bad(at + "\"pcrs\" must hold PCR numbers 0..23");
      a.pcrs.push_back(static_cast<std::uint32_t>(n.get<std::uint64_t>()));
    }
    for (std::size_t k = 1; k < a.pcrs.size(); ++k) {
      if (a.pcrs[k] <= a.pcrs[k - 1]) return bad(at + "\"pcrs\" must be sorted and distinct");
    }
    for (const char* key : {"digest", "signature"}) {
      if (!e.contains(key) || !e[key].is_string()) return bad(at + "\"" + key + "\" must be a hex string");
      auto bytes = crypto::from_hex(e[key].get<std::string>());
      if (!bytes.has_value() || bytes->empty()) return bad(at + "\"" + key + "\" is not valid hex");
      (std::string(key) == "digest" ? a.policy_digest : a.signature) = std::move(*bytes);
    }
    if (a.policy_digest.size() != 32) return bad(at + "\"digest\" must be 32 bytes (SHA-256)");
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace

Result<tpm::SignedPcrPolicies> load_signed_pcr_policies(const Config& config) {
  tpm::SignedPcrPolicies policies;
  if (config.tpm_policy_public_key.empty()) return policies;
  COFFER_ASSIGN_OR_RETURN(auto pem, read_whole_file(config.tpm_policy_public_key, "the TPM policy public key"));
  auto modulus = crypto::rsa2048_public_modulus_from_pem(pem);
  if (!modulus.ok()) {
    return modulus.status().with_context("protector.tpm.policy_public_key " + config.tpm_policy_public_key);
  }
  policies.policy_key_modulus = std::move(modulus).value();
  std::error_code ec;
  if (!std::filesystem::exists(config.tpm_pcr_approvals_file, ec)) return policies;
  COFFER_ASSIGN_OR_RETURN(auto text, read_whole_file(config.tpm_pcr_approvals_file, "the PCR approvals file"));
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return policies;  // empty file: none yet
  COFFER_ASSIGN_OR_RETURN(policies.approvals, parse_approvals(config.tpm_pcr_approvals_file, text));
  return policies;
}

Status append_pcr_approval(const std::string& path, const tpm::PcrApproval& approval) {
  nlohmann::json list = nlohmann::json::array();
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    COFFER_ASSIGN_OR_RETURN(auto text, read_whole_file(path, "the PCR approvals file"));
    if (text.find_first_not_of(" \t\r\n") != std::string::npos) {
      COFFER_RETURN_IF_ERROR(parse_approvals(path, text).status());  // refuse to extend a broken file
      list = nlohmann::json::parse(text);
    }
  }
  list.push_back({{"pcrs", approval.pcrs},
                  {"digest", crypto::to_hex(approval.policy_digest)},
                  {"signature", crypto::to_hex(approval.signature)}});
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << list.dump(2) << "\n";
    out.flush();
    if (!out) return Error(Code::internal, "cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Error(Code::internal, "cannot rename " + tmp + " to " + path + ": " + ec.message());
  return Status::Ok();
}

Result<crypto::SecretBytes> read_pin(const Config& config, const std::optional<std::string>& pin_file) {
  const bool tpm = config.protector_type == "tpm";
  const char* what = tpm ? "cannot read the TPM auth value" : "cannot read the PKCS#11 PIN";
  std::string path;
  if (pin_file.has_value()) {
    path = *pin_file;
  } else if (tpm && config.tpm_auth_credential.empty()) {
    return crypto::SecretBytes();  // the TPM master key has no auth value: its PCR policy alone
  } else {
    auto resolved = keys::credential_path(tpm ? config.tpm_auth_credential : config.pin_credential);
    if (!resolved.ok()) return resolved.status().with_context(what);
    path = std::move(resolved).value();
  }
  auto pin = keys::read_credential_file(path);
  if (!pin.ok()) return pin.status().with_context(what);
  return pin;
}

Result<std::unique_ptr<keys::KeyProtector>> open_protector(const Config& config,
                                                           const crypto::SecretBytes& pin) {
  if (config.protector_type == "tpm") {
    COFFER_ASSIGN_OR_RETURN(auto policies, load_signed_pcr_policies(config));
    auto opened = policies.policy_key_modulus.empty()
                      ? tpm::TpmProtector::open(config.tpm, pin)
                      : tpm::TpmProtector::open(config.tpm, pin, std::move(policies));
    COFFER_ASSIGN_OR_RETURN(auto protector, std::move(opened));
    return std::unique_ptr<keys::KeyProtector>(std::move(protector));
  }
  COFFER_ASSIGN_OR_RETURN(auto protector, hsm::Pkcs11Protector::open(config.pkcs11, pin));
  return std::unique_ptr<keys::KeyProtector>(std::move(protector));
}

Result<std::unique_ptr<storage::SqliteStorage>> open_storage(const Config& config, bool create) {
  return storage::SqliteStorage::open(config.storage_path, create);
}

}  // namespace coffer::daemon
