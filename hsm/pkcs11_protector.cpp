// Pkcs11Protector: the master key in a PKCS#11 token, reached through p11-kit.
//
// Every operation looks the MK up by label (C_FindObjects) instead of caching its handle: the
// label is the key's identity, and a key deleted or replaced behind our back (another process,
// a restored token) is then seen at once as not_found / data_loss rather than as a stale handle.
// DEKs only ever exist in the token as short-lived session objects, destroyed on every path.
#include "hsm/pkcs11_protector.h"

#include <atomic>
#include <optional>
#include <vector>

#include "crypto/random.h"
#include "hsm/ck_status.h"
#include "hsm/pkcs11_module.h"

namespace coffer::hsm {
namespace {

struct WrapMechanism {
  CK_MECHANISM_TYPE type;
  const char* name;
};
// In order of preference. Both are AES key wrap without IV parameters (the default IVs).
constexpr WrapMechanism kMechanisms[] = {
    {CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD"},  // RFC 5649
    {CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP"},          // RFC 3394: input a multiple of 8 bytes
};
constexpr CK_ULONG kMasterKeyBytes = 32;
// A wrapped AES key is at most 32 + 8 (+ padding) bytes; anything far larger is not ours.
constexpr std::size_t kMaxBlobBytes = 1024;

const WrapMechanism* mechanism_by_name(const std::string& name) {
  for (const auto& m : kMechanisms) {
    if (name == m.name) return &m;
  }
  return nullptr;
}

template <typename T>
CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, T& value) {
  return CK_ATTRIBUTE{type, &value, sizeof value};
}

bool is_aes_key_size(std::size_t n) { return n == 16 || n == 24 || n == 32; }

// Whether `info` allows wrapping and unwrapping with a 256-bit AES key. The spec gives AES key
// sizes in bytes but some modules report bits, so either reading is accepted; 0 means "not said".
bool usable_for_wrapping(const CK_MECHANISM_INFO& info) {
  const CK_FLAGS need = CKF_WRAP | CKF_UNWRAP;
  if ((info.flags & need) != need) return false;
  if (info.ulMaxKeySize == 0) return true;
  const auto in_range = [&](CK_ULONG n) { return info.ulMinKeySize <= n && n <= info.ulMaxKeySize; };
  return in_range(kMasterKeyBytes) || in_range(kMasterKeyBytes * 8);
}

}  // namespace

// Owns the session; every member function expects the protector's mutex to be held.
class Pkcs11Protector::Device {
 public:
  Device(std::unique_ptr<Pkcs11Module> module, TokenInfo token, std::string key_label)
      : module_(std::move(module)),
        fn_(module_->functions()),
        token_(std::move(token)),
        key_label_(std::move(key_label)) {}

  ~Device() {
    // No explicit C_Logout: login state belongs to the whole process, so logging out here would
    // also log out another instance on the same token (a second protector during rotation).
    // Closing the process's last session on the token returns it to the public state anyway.
    if (session_ != CK_INVALID_HANDLE) (void)fn_->C_CloseSession(session_);
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const TokenInfo& token() const { return token_; }
  const Pkcs11Module& module() const { return *module_; }
  const WrapMechanism& mechanism() const { return *mechanism_; }
  std::uint64_t operations() const { return ops_.load(); }

  Status choose_mechanism() {
    for (const auto& m : kMechanisms) {
      CK_MECHANISM_INFO info{};
      const CK_RV rv = fn_->C_GetMechanismInfo(token_.slot, m.type, &info);
      if (rv == CKR_MECHANISM_INVALID) continue;
      if (rv != CKR_OK) return failure(rv, "C_GetMechanismInfo");
      if (usable_for_wrapping(info)) {
        mechanism_ = &m;
        return Status::Ok();
      }
    }
    return Error(Code::failed_precondition,
                 "token '" + token_.label + "' in module '" + module_->name() +
                     "' offers neither CKM_AES_KEY_WRAP_PAD nor CKM_AES_KEY_WRAP for wrapping with "
                     "a 256-bit AES key; coffer cannot keep its master key on this token");
  }

  Status open_session(const crypto::SecretBytes& pin) {
    if (pin.empty()) {
      return Error(Code::invalid_argument,
                   "the PIN for token '" + token_.label + "' is empty (check the PIN credential)");
    }
    CK_RV rv = fn_->C_OpenSession(token_.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                                  nullptr, &session_);
    if (rv != CKR_OK) {
      session_ = CK_INVALID_HANDLE;
      return failure(rv, "C_OpenSession");
    }
    // C_Login takes a non-const pointer: hand it a wiped copy rather than casting const away.
    crypto::SecretBytes copy = pin.clone();
    rv = fn_->C_Login(session_, CKU_USER, copy.data(crypto::reveal()), copy.size());
    // Already logged in: another instance in this process logged in to this token, and login
    // state is per process. That instance proved the PIN; this session shares its login.
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) return Status::Ok();
    std::string hint = "check the PIN credential";
    if (rv == CKR_PIN_LOCKED) hint = "the user PIN is locked; the security officer must reset it";
    if (rv == CKR_PIN_EXPIRED) hint = "the user PIN has expired; set a new one";
    if (rv == CKR_USER_PIN_NOT_INITIALIZED) hint = "the token has no user PIN yet; initialise it";
    Code code = ckr_code(rv);
    if (code == Code::internal) code = Code::permission_denied;
    return Error(code, "PKCS#11 login to token '" + token_.label + "' failed: " + ckr_name(rv) +
                           " (" + hint + ")");
  }

  // The MK's handle, nullopt when no key has the label. Two keys with the label is an error:
  // choosing one would make unwrap results depend on the token's enumeration order.
  Result<std::optional<CK_OBJECT_HANDLE>> find_master_key() {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_BBOOL yes = CK_TRUE;
    std::string label = key_label_;
    CK_ATTRIBUTE query[] = {attr(CKA_CLASS, cls), attr(CKA_KEY_TYPE, type), attr(CKA_TOKEN, yes),
                            {CKA_LABEL, label.data(), label.size()}};
    CK_RV rv = fn_->C_FindObjectsInit(session_, query, std::size(query));
    if (rv != CKR_OK) return failure(rv, "C_FindObjectsInit");
    CK_OBJECT_HANDLE found[2] = {CK_INVALID_HANDLE, CK_INVALID_HANDLE};
    CK_ULONG count = 0;
    rv = fn_->C_FindObjects(session_, found, 2, &count);
    const CK_RV final_rv = fn_->C_FindObjectsFinal(session_);
    if (rv != CKR_OK) return failure(rv, "C_FindObjects");
    if (final_rv != CKR_OK) return failure(final_rv, "C_FindObjectsFinal");
    if (count == 0) return std::optional<CK_OBJECT_HANDLE>();
    if (count > 1) {
      return Error(Code::failed_precondition,
                   "several keys on token '" + token_.label + "' are labelled '" + key_label_ +
                       "'; refusing to guess which is the master key (remove the stray copy)");
    }
    return std::optional<CK_OBJECT_HANDLE>(found[0]);
  }

  Result<CK_OBJECT_HANDLE> require_master_key() {
    COFFER_ASSIGN_OR_RETURN(auto mk, find_master_key());
    if (!mk) return master_key_missing();
    return *mk;
  }

  Status master_key_missing() const {
    return Error(Code::not_found, "master key '" + key_label_ + "' not found on token '" +
                                      token_.label + "' (run cofferctl init, or restore the token)");
  }

  Status create_master_key() {
    COFFER_ASSIGN_OR_RETURN(auto existing, find_master_key());
    if (existing) {
      return Error(Code::already_exists,
                   "master key '" + key_label_ + "' already exists on token '" + token_.label +
                       "'; refusing to create another (a new master key needs a new label)");
    }
    // Two processes creating at once could both get here; find_master_key then refuses the
    // duplicate label on every later use instead of silently picking one.
    CK_MECHANISM gen{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG len = kMasterKeyBytes;
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    std::string label = key_label_;
    CK_ATTRIBUTE tmpl[] = {
        attr(CKA_CLASS, cls),       attr(CKA_KEY_TYPE, type),    attr(CKA_VALUE_LEN, len),
        attr(CKA_TOKEN, yes),       attr(CKA_PRIVATE, yes),      attr(CKA_SENSITIVE, yes),
        attr(CKA_EXTRACTABLE, no),  attr(CKA_WRAP, yes),         attr(CKA_UNWRAP, yes),
        attr(CKA_ENCRYPT, no),      attr(CKA_DECRYPT, no),       attr(CKA_SIGN, no),
        attr(CKA_VERIFY, no),       attr(CKA_DERIVE, no),
        {CKA_LABEL, label.data(), label.size()}};
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    ++ops_;
    const CK_RV rv = fn_->C_GenerateKey(session_, &gen, tmpl, std::size(tmpl), &key);
    if (rv != CKR_OK) {
      return failure(rv, "C_GenerateKey").with_context("creating master key '" + key_label_ + "'");
    }
    // A token that ignored part of the template must not keep a weaker key under our label.
    if (Status s = check_master_key_protection(key); !s.ok()) {
      ++ops_;
      (void)fn_->C_DestroyObject(session_, key);
      return s;
    }
    return Status::Ok();
  }

  Result<keys::WrappedKey> wrap(const crypto::SecretBytes& dek) {
    if (!is_aes_key_size(dek.size())) {
      return Error(Code::invalid_argument, "a key to wrap must be 16, 24 or 32 bytes, not " +
                                               std::to_string(dek.size()));
    }
    COFFER_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE mk, require_master_key());

    // The DEK enters the token as a session object: extractable (so it can be wrapped) but
    // sensitive (its value cannot be read back), usable for nothing else.
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        attr(CKA_CLASS, cls),      attr(CKA_KEY_TYPE, type),   attr(CKA_TOKEN, no),
        attr(CKA_SENSITIVE, yes),  attr(CKA_EXTRACTABLE, yes), attr(CKA_ENCRYPT, no),
        attr(CKA_DECRYPT, no),     attr(CKA_WRAP, no),         attr(CKA_UNWRAP, no),
        // The token copies the value; dek's own buffer is the only plaintext on our side.
        {CKA_VALUE, const_cast<std::uint8_t*>(dek.data(crypto::reveal())), dek.size()}};
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    ++ops_;
    CK_RV rv = fn_->C_CreateObject(session_, tmpl, std::size(tmpl), &obj);
    if (rv != CKR_OK) return failure(rv, "C_CreateObject (importing the key to wrap)");
    SessionObject guard(*this, obj);

    CK_MECHANISM mech{mechanism_->type, nullptr, 0};
    std::vector<std::uint8_t> blob(dek.size() + 16);
    CK_ULONG blob_len = blob.size();
    ++ops_;
    rv = fn_->C_WrapKey(session_, &mech, mk, obj, blob.data(), &blob_len);
    if (rv == CKR_BUFFER_TOO_SMALL && blob_len > blob.size() && blob_len <= kMaxBlobBytes) {
      blob.resize(blob_len);
      ++ops_;
      rv = fn_->C_WrapKey(session_, &mech, mk, obj, blob.data(), &blob_len);
    }
    if (rv != CKR_OK) return failure(rv, "C_WrapKey");
    blob.resize(blob_len);
    return keys::WrappedKey{mechanism_->name, key_label_, std::move(blob)};
  }

  Result<crypto::SecretBytes> unwrap(const keys::WrappedKey& wrapped) {
    const WrapMechanism* m = mechanism_by_name(wrapped.mechanism);
    if (m == nullptr) {
      return Error(Code::invalid_argument,
                   "wrapped key uses mechanism '" + wrapped.mechanism +
                       "', which the PKCS#11 protector does not know (expected "
                       "CKM_AES_KEY_WRAP_PAD or CKM_AES_KEY_WRAP)");
    }
    if (wrapped.master_key_id != key_label_) {
      return Error(Code::not_found,
                   "key was wrapped by master key '" + wrapped.master_key_id +
                       "' but this protector uses '" + key_label_ + "' on token '" +
                       token_.label + "' (check key_label)");
    }
    const std::string corrupt = "wrapped key does not unwrap under master key '" + key_label_ +
                                "' on token '" + token_.label + "'";
    if (wrapped.blob.empty() || wrapped.blob.size() > kMaxBlobBytes) {
      return Error(Code::data_loss,
                   corrupt + ": blob of " + std::to_string(wrapped.blob.size()) + " bytes");
    }
    COFFER_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE mk, require_master_key());

    CK_MECHANISM mech{m->type, nullptr, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {attr(CKA_CLASS, cls),      attr(CKA_KEY_TYPE, type),
                           attr(CKA_TOKEN, no),       attr(CKA_SENSITIVE, no),
                           attr(CKA_EXTRACTABLE, yes)};
    // The module only reads the blob; PKCS#11's prototype just lacks the const.
    std::vector<std::uint8_t> blob = wrapped.blob;
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    ++ops_;
    CK_RV rv = fn_->C_UnwrapKey(session_, &mech, mk, blob.data(), blob.size(), tmpl,
                                std::size(tmpl), &obj);
    if (rv != CKR_OK) {
      if (ckr_is_device_error(rv) || ckr_code(rv) == Code::resource_exhausted) {
        return failure(rv, "C_UnwrapKey");
      }
      if (ckr_code(rv) == Code::not_found) return master_key_missing();  // deleted meanwhile
      if (rv == CKR_MECHANISM_INVALID || rv == CKR_MECHANISM_PARAM_INVALID) {
        return Error(Code::failed_precondition,
                     "token '" + token_.label + "' cannot unwrap with " + m->name + ": " +
                         ckr_name(rv));
      }
      // SoftHSM reports a failed integrity check as several different codes (CKR_WRAPPED_
      // KEY_INVALID, CKR_GENERAL_ERROR, ...): any non-device failure means a bad blob.
      return Error(Code::data_loss, corrupt + ": " + ckr_name(rv) +
                                        " (the stored key is corrupt or from another master key)");
    }
    SessionObject guard(*this, obj);

    CK_ATTRIBUTE value{CKA_VALUE, nullptr, 0};
    ++ops_;
    rv = fn_->C_GetAttributeValue(session_, obj, &value, 1);
    if (rv != CKR_OK) return failure(rv, "C_GetAttributeValue (unwrapped key length)");
    if (value.ulValueLen == CK_UNAVAILABLE_INFORMATION || !is_aes_key_size(value.ulValueLen)) {
      return Error(Code::data_loss, corrupt + ": it unwrapped to an unexpected length");
    }
    COFFER_ASSIGN_OR_RETURN(auto key, crypto::SecretBytes::create_locked(value.ulValueLen));
    value.pValue = key.data(crypto::reveal());
    ++ops_;
    rv = fn_->C_GetAttributeValue(session_, obj, &value, 1);
    if (rv != CKR_OK) return failure(rv, "C_GetAttributeValue (unwrapped key)");
    if (value.ulValueLen != key.size()) {
      return Error(Code::internal, "token '" + token_.label + "' changed the key length");
    }
    return key;
  }

  // The MK must be sensitive and non-extractable, and the token must refuse to reveal it.
  Status check_master_key_protection(CK_OBJECT_HANDLE mk) {
    const std::string which = "master key '" + key_label_ + "' on token '" + token_.label + "'";
    CK_ATTRIBUTE value{CKA_VALUE, nullptr, 0};
    ++ops_;
    const CK_RV rv = fn_->C_GetAttributeValue(session_, mk, &value, 1);
    if (rv == CKR_OK && value.ulValueLen != CK_UNAVAILABLE_INFORMATION) {
      return Error(Code::failed_precondition,
                   which + " is readable (CKA_VALUE was not refused): the token does not "
                           "protect it; replace it with a key generated by coffer");
    }
    if (rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_OK) {
      return failure(rv, "C_GetAttributeValue(CKA_VALUE)");
    }
    CK_BBOOL extractable = CK_TRUE;
    CK_BBOOL sensitive = CK_FALSE;
    CK_ATTRIBUTE flags[] = {attr(CKA_EXTRACTABLE, extractable), attr(CKA_SENSITIVE, sensitive)};
    ++ops_;
    const CK_RV frv = fn_->C_GetAttributeValue(session_, mk, flags, std::size(flags));
    if (frv != CKR_OK) return failure(frv, "C_GetAttributeValue(CKA_EXTRACTABLE, CKA_SENSITIVE)");
    if (extractable != CK_FALSE) {
      return Error(Code::failed_precondition,
                   which + " is extractable (CKA_EXTRACTABLE is true): it could be exported; "
                           "replace it with a key generated by coffer");
    }
    if (sensitive != CK_TRUE) {
      return Error(Code::failed_precondition, which + " is not sensitive (CKA_SENSITIVE is false)");
    }
    return Status::Ok();
  }

  Status self_test_protection() {
    COFFER_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE mk, require_master_key());
    return check_master_key_protection(mk);
  }

 private:
  // Destroys a session object on every path out of the scope that created it.
  class SessionObject {
   public:
    SessionObject(Device& device, CK_OBJECT_HANDLE handle) : device_(device), handle_(handle) {}
    ~SessionObject() {
      ++device_.ops_;
      (void)device_.fn_->C_DestroyObject(device_.session_, handle_);
    }
    SessionObject(const SessionObject&) = delete;
    SessionObject& operator=(const SessionObject&) = delete;

   private:
    Device& device_;
    CK_OBJECT_HANDLE handle_;
  };

  // "PKCS#11 <call> on token '<label>' failed: <CKR>", plus what to do for device errors.
  Status failure(CK_RV rv, const std::string& call) const {
    Status s = ck_error(rv, "PKCS#11 " + call + " on token '" + token_.label + "' (module '" +
                                module_->name() + "') failed");
    if (s.code() == Code::unavailable) {
      return Error(s.code(), s.message() + " (the device or session is gone: check the HSM and "
                                           "restart the daemon once it is back)");
    }
    return s;
  }

  std::unique_ptr<Pkcs11Module> module_;
  CK_FUNCTION_LIST* fn_;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
  TokenInfo token_;
  std::string key_label_;
  const WrapMechanism* mechanism_ = nullptr;
  std::atomic<std::uint64_t> ops_{0};
};

Result<std::unique_ptr<Pkcs11Protector>> Pkcs11Protector::open(const Pkcs11Config& config,
                                                               const crypto::SecretBytes& pin) {
  if (config.key_label.empty()) {
    return Error(Code::invalid_argument, "the master key label (key_label) is empty");
  }
  COFFER_ASSIGN_OR_RETURN(auto module, Pkcs11Module::load(config.module));
  COFFER_ASSIGN_OR_RETURN(auto token,
                          module->find_token(TokenSelector{config.token_label, config.token_uri}));
  auto device = std::make_unique<Device>(std::move(module), std::move(token), config.key_label);
  COFFER_RETURN_IF_ERROR(device->choose_mechanism());
  COFFER_RETURN_IF_ERROR(device->open_session(pin));

  const TokenInfo& t = device->token();
  keys::ProtectorInfo info{"pkcs11", config.key_label, device->mechanism().name,
                           "module " + device->module().name() + ", token " + t.label + " (" +
                               t.manufacturer + " " + t.model + ")"};
  return std::unique_ptr<Pkcs11Protector>(new Pkcs11Protector(std::move(device), std::move(info)));
}

Pkcs11Protector::Pkcs11Protector(std::unique_ptr<Device> device, keys::ProtectorInfo info)
    : device_(std::move(device)), info_(std::move(info)) {}

Pkcs11Protector::~Pkcs11Protector() = default;

Status Pkcs11Protector::create_master_key() {
  std::lock_guard lock(mu_);
  return device_->create_master_key();
}

Result<bool> Pkcs11Protector::has_master_key() {
  std::lock_guard lock(mu_);
  COFFER_ASSIGN_OR_RETURN(auto mk, device_->find_master_key());
  return mk.has_value();
}

Result<keys::WrappedKey> Pkcs11Protector::wrap(const crypto::SecretBytes& dek) {
  std::lock_guard lock(mu_);
  return device_->wrap(dek);
}

Result<crypto::SecretBytes> Pkcs11Protector::unwrap(const keys::WrappedKey& wrapped) {
  std::lock_guard lock(mu_);
  return device_->unwrap(wrapped);
}

Status Pkcs11Protector::self_test() {
  const std::string what = "PKCS#11 self-test (" + info_.detail + ")";
  COFFER_RETURN_IF_ERROR(keys::round_trip_self_test(*this, what));
  std::lock_guard lock(mu_);
  return device_->self_test_protection().with_context(what);
}

keys::ProtectorInfo Pkcs11Protector::describe() const { return info_; }

std::uint64_t Pkcs11Protector::device_operations() const { return device_->operations(); }

}  // namespace coffer::hsm
