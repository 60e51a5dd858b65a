// RawSession: a test's own PKCS#11 session on a SoftHSM token, next to (not through) the
// protector under test, so tests can check what is really on the token and plant keys the
// protector would never create. Test-only; header-only.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "hsm/ck_status.h"
#include "hsm/pkcs11_module.h"

namespace coffer::hsm::testing {

class RawSession {
 public:
  // Opens a R/W session on the token labelled `label` of `module` and logs in as the user.
  static Result<std::unique_ptr<RawSession>> open(const std::string& module,
                                                  const std::string& label, std::string pin) {
    std::unique_ptr<RawSession> s(new RawSession());
    COFFER_ASSIGN_OR_RETURN(s->module_, Pkcs11Module::load(module));
    COFFER_ASSIGN_OR_RETURN(auto token, s->module_->find_token(TokenSelector{label, ""}));
    s->fn_ = s->module_->functions();
    CK_RV rv = s->fn_->C_OpenSession(token.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                                     nullptr, &s->session_);
    if (rv != CKR_OK) return ck_error(rv, "raw C_OpenSession");
    rv = s->fn_->C_Login(s->session_, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()),
                         pin.size());
    // Logged in already when a protector in this process holds a session on the token.
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) return ck_error(rv, "raw C_Login");
    return s;
  }

  ~RawSession() {
    if (session_ != CK_INVALID_HANDLE) (void)fn_->C_CloseSession(session_);
  }

  CK_FUNCTION_LIST* fn() const { return fn_; }
  CK_SESSION_HANDLE session() const { return session_; }

  // All secret keys labelled `label` on the token.
  std::vector<CK_OBJECT_HANDLE> find_keys(const std::string& label) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    std::string l = label;
    CK_ATTRIBUTE query[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, l.data(), l.size()}};
    std::vector<CK_OBJECT_HANDLE> out;
    if (fn_->C_FindObjectsInit(session_, query, 2) != CKR_OK) return out;
    CK_OBJECT_HANDLE h[16];
    CK_ULONG n = 0;
    if (fn_->C_FindObjects(session_, h, 16, &n) == CKR_OK) out.assign(h, h + n);
    (void)fn_->C_FindObjectsFinal(session_);
    return out;
  }

  // A CK_BBOOL attribute of `obj`, or the CK_RV that refused it.
  Result<bool> get_bool(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) {
    CK_BBOOL v = CK_FALSE;
    CK_ATTRIBUTE a{type, &v, sizeof v};
    const CK_RV rv = fn_->C_GetAttributeValue(session_, obj, &a, 1);
    if (rv != CKR_OK) return ck_error(rv, "raw C_GetAttributeValue");
    return v == CK_TRUE;
  }

  Result<CK_ULONG> get_ulong(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) {
    CK_ULONG v = 0;
    CK_ATTRIBUTE a{type, &v, sizeof v};
    const CK_RV rv = fn_->C_GetAttributeValue(session_, obj, &a, 1);
    if (rv != CKR_OK) return ck_error(rv, "raw C_GetAttributeValue");
    return v;
  }

  // Generates an AES-256 key with the given protection, as a token or session object.
  Result<CK_OBJECT_HANDLE> generate_aes(const std::string& label, bool token, bool sensitive,
                                        bool extractable) {
    CK_MECHANISM gen{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE;
    CK_BBOOL sens = sensitive ? CK_TRUE : CK_FALSE;
    CK_BBOOL extr = extractable ? CK_TRUE : CK_FALSE;
    CK_BBOOL yes = CK_TRUE;
    std::string l = label;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},       {CKA_KEY_TYPE, &type, sizeof type},
                        {CKA_VALUE_LEN, &len, sizeof len},   {CKA_TOKEN, &tok, sizeof tok},
                        {CKA_PRIVATE, &yes, sizeof yes},     {CKA_SENSITIVE, &sens, sizeof sens},
                        {CKA_EXTRACTABLE, &extr, sizeof extr}, {CKA_WRAP, &yes, sizeof yes},
                        {CKA_UNWRAP, &yes, sizeof yes},      {CKA_LABEL, l.data(), l.size()}};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    const CK_RV rv = fn_->C_GenerateKey(session_, &gen, t, std::size(t), &h);
    if (rv != CKR_OK) return ck_error(rv, "raw C_GenerateKey");
    return h;
  }

 private:
  RawSession() = default;

  std::unique_ptr<Pkcs11Module> module_;
  CK_FUNCTION_LIST* fn_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

}  // namespace coffer::hsm::testing
