// Barrier: seal and open secret records (layout and associated data in barrier.h).
#include "storage/barrier.h"

#include <algorithm>
#include <ctime>
#include <limits>

#include "crypto/aead.h"

namespace coffer::storage {
namespace {

std::vector<std::uint8_t> make_header(std::uint32_t dek_version) {
  std::vector<std::uint8_t> h(kSealedMagic, kSealedMagic + sizeof kSealedMagic);
  h.push_back(kSealedFormatVersion);
  for (int shift = 24; shift >= 0; shift -= 8) h.push_back(static_cast<std::uint8_t>(dek_version >> shift));
  return h;
}

std::uint32_t read_u32be(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

void append_prefixed(std::vector<std::uint8_t>& out, const std::string& s) {
  const auto n = static_cast<std::uint32_t>(s.size());  // sizes are checked by the callers
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(n >> shift));
  out.insert(out.end(), s.begin(), s.end());
}

// The record's identity bound to its ciphertext. Length prefixes keep ("a/", "b") and
// ("a", "/b") apart.
std::vector<std::uint8_t> associated_data(crypto::ByteView header, const std::string& mount,
                                          const std::string& path) {
  std::vector<std::uint8_t> aad(header.begin(), header.end());
  append_prefixed(aad, mount);
  append_prefixed(aad, path);
  return aad;
}

bool identity_ok(const std::string& mount, const std::string& path) {
  constexpr std::size_t kMax = std::numeric_limits<std::uint32_t>::max();
  return !mount.empty() && !path.empty() && mount.size() <= kMax && path.size() <= kMax;
}

}  // namespace

Result<std::optional<crypto::SecretBytes>> Barrier::read(const std::string& mount,
                                                         const std::string& path) {
  COFFER_ASSIGN_OR_RETURN(auto record, storage_.get_secret(mount, path));
  if (!record) return std::optional<crypto::SecretBytes>();
  COFFER_ASSIGN_OR_RETURN(crypto::SecretBytes plain, open(mount, path, record->dek_version, record->sealed));
  return std::optional<crypto::SecretBytes>(std::move(plain));
}

Result<crypto::SecretBytes> Barrier::open(const std::string& mount, const std::string& path,
                                          std::uint32_t dek_version, const std::vector<std::uint8_t>& sealed) {
  const std::string name = "stored secret " + mount + path;
  if (sealed.size() < kSealedHeaderSize + crypto::kAeadOverhead ||
      !std::equal(kSealedMagic, kSealedMagic + sizeof kSealedMagic, sealed.begin()) ||
      sealed[4] != kSealedFormatVersion) {
    return Error(Code::data_loss, name + " is not a coffer sealed record of a known format");
  }
  const std::uint32_t header_version = read_u32be(sealed.data() + 5);
  if (header_version != dek_version) {
    return Error(Code::data_loss, name + " is corrupt or was tampered with: its header names DEK v" +
                                      std::to_string(header_version) + " but its row says v" +
                                      std::to_string(dek_version));
  }
  auto key = keyring_.dek(header_version);
  if (!key.ok()) {
    return Error(Code::data_loss, name + " was sealed with DEK v" + std::to_string(header_version) +
                                      ", which the keyring does not hold");
  }
  const crypto::ByteView header(sealed.data(), kSealedHeaderSize);
  const auto aad = associated_data(header, mount, path);
  auto plain = crypto::aead_open(**key, crypto::ByteView(sealed).subspan(kSealedHeaderSize), aad);
  if (!plain.ok()) {
    // One message for every authentication failure: which byte changed is not our business
    // to reveal, and the content is never quoted.
    return Error(Code::data_loss, name + " failed authentication (corrupt, tampered with, or "
                                         "moved from another path)");
  }
  return std::move(plain).value();
}

Status Barrier::write(const std::string& mount, const std::string& path,
                      const crypto::SecretBytes& plaintext) {
  COFFER_ASSIGN_OR_RETURN(Sealed sealed, seal(mount, path, plaintext));
  SecretRecord record;
  record.mount = mount;
  record.path = path;
  record.dek_version = sealed.dek_version;
  record.sealed = std::move(sealed.bytes);
  record.updated_at = static_cast<std::int64_t>(std::time(nullptr));
  return storage_.put_secret(record);
}

Result<Barrier::Sealed> Barrier::seal(const std::string& mount, const std::string& path,
                                      const crypto::SecretBytes& plaintext) {
  if (!identity_ok(mount, path)) {
    return Error(Code::invalid_argument, "a secret needs a non-empty mount and path");
  }
  COFFER_ASSIGN_OR_RETURN(const keys::EncryptionKey key, keyring_.acquire_encryption_key(storage_));
  const std::vector<std::uint8_t> header = make_header(key.version);
  const auto aad = associated_data(header, mount, path);
  COFFER_ASSIGN_OR_RETURN(auto ciphertext,
                          crypto::aead_seal(*key.key, plaintext.bytes(crypto::reveal()), aad));
  Sealed out;
  out.dek_version = key.version;
  out.bytes = header;
  out.bytes.insert(out.bytes.end(), ciphertext.begin(), ciphertext.end());
  return out;
}

Result<bool> Barrier::remove(const std::string& mount, const std::string& path) {
  return storage_.delete_secret(mount, path);
}

Result<std::vector<std::string>> Barrier::list(const std::string& mount, const std::string& prefix) {
  return storage_.list_secrets(mount, prefix);
}

}  // namespace coffer::storage
