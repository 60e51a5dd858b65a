// The key-blob file (see key_blob.h).
#include "tpm/key_blob.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "crypto/encoding.h"

namespace coffer::tpm {
namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

Result<std::optional<KeyBlob>> read_key_blob(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::optional<KeyBlob>();
    return Error(errno == EACCES ? Code::permission_denied : Code::internal,
                 "cannot read TPM key-blob file '" + path + "': " + errno_text());
  }
  std::stringstream text;
  text << in.rdbuf();
  const std::string bad = "TPM key-blob file '" + path + "' is not a " + kKeyBlobFormat +
                          " file (restore it from backup)";
  auto j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Error(Code::data_loss, bad + ": not JSON");
  try {
    if (j.at("format").get<std::string>() != kKeyBlobFormat) {
      return Error(Code::data_loss, bad + ": unknown format");
    }
    KeyBlob b;
    b.key_id = j.at("key_id").get<std::string>();
    b.mechanism = j.at("mechanism").get<std::string>();
    b.pcrs = j.at("pcrs").get<std::vector<std::uint32_t>>();
    // Sorted, distinct, 0..23: the selection bitmap has room for 24 PCRs and no more.
    if (b.pcrs.empty() || b.pcrs.back() > 23 ||
        std::adjacent_find(b.pcrs.begin(), b.pcrs.end(), std::greater_equal<>()) != b.pcrs.end()) {
      return Error(Code::data_loss, bad + ": bad PCR list");
    }
    for (const auto& [k, v] : j.at("pcr_values").items()) {
      b.pcr_hex[static_cast<std::uint32_t>(std::stoul(k))] = v.get<std::string>();
    }
    b.auth_value = j.at("auth_value").get<bool>();
    b.srk_name_hex = j.at("srk_name").get<std::string>();
    auto pub = crypto::from_hex(j.at("public").get<std::string>());
    auto priv = crypto::from_hex(j.at("private").get<std::string>());
    if (!pub || !priv || pub->empty() || priv->empty()) {
      return Error(Code::data_loss, bad + ": bad public/private hex");
    }
    b.public_area = std::move(*pub);
    b.private_area = std::move(*priv);
    if (j.contains("policy_authorize")) {
      auto key = crypto::from_hex(j.at("policy_authorize").at("rsa_modulus").get<std::string>());
      if (!key || key->empty()) return Error(Code::data_loss, bad + ": bad policy key");
      b.policy_key_modulus = std::move(*key);
    }
    return std::optional<KeyBlob>(std::move(b));
  } catch (const std::exception& e) {
    return Error(Code::data_loss, bad + ": " + e.what());
  }
}

Status write_key_blob(const std::string& path, const KeyBlob& b) {
  nlohmann::json pcr_values = nlohmann::json::object();
  for (const auto& [pcr, hex] : b.pcr_hex) pcr_values[std::to_string(pcr)] = hex;
  nlohmann::json j = {
      {"format", kKeyBlobFormat},
      {"key_id", b.key_id},
      {"mechanism", b.mechanism},
      {"pcr_bank", "sha256"},
      {"pcrs", b.pcrs},
      {"pcr_values", pcr_values},
      {"auth_value", b.auth_value},
      {"srk_name", b.srk_name_hex},
      {"public", crypto::to_hex(b.public_area)},
      {"private", crypto::to_hex(b.private_area)},
  };
  if (!b.policy_key_modulus.empty()) {
    j["policy_authorize"] = {{"rsa_modulus", crypto::to_hex(b.policy_key_modulus)},
                             {"rsa_exponent", 65537}};
  }
  const std::string text = j.dump(2) + "\n";
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Error(Code::internal, "cannot create '" + tmp + "' for the TPM key blob: " + errno_text());
  }
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    return Error(Code::internal, "writing the TPM key blob '" + tmp + "' failed: " + why);
  }
  const int rc = ::link(tmp.c_str(), path.c_str());
  const int link_errno = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (link_errno == EEXIST) {
      return Error(Code::already_exists, "TPM key-blob file '" + path +
                                             "' already exists; refusing to replace a master key");
    }
    return Error(Code::internal,
                 "cannot create TPM key-blob file '" + path + "': " + std::strerror(link_errno));
  }
  return Status::Ok();
}

}  // namespace coffer::tpm
