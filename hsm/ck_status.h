// Translating PKCS#11 return values (CK_RV) into coffer Status values at the hsm/ boundary. The
// CKR name always appears in the message, so an operator can look it up in the module's manual.
#pragma once

#include <p11-kit/pkcs11.h>

#include <string>

#include "common/status.h"

namespace coffer::hsm {

// "CKR_PIN_INCORRECT"; unknown values as "CKR_0x1a2", vendor ones as "CKR_VENDOR_DEFINED+0x..".
std::string ckr_name(CK_RV rv);

// True for errors that say the device, the token or the session is gone or broken, rather than
// something about the request: retrying later (or reopening) may help.
bool ckr_is_device_error(CK_RV rv);

// The canonical code for a CK_RV: PIN errors -> permission_denied, device/session errors ->
// unavailable, memory -> resource_exhausted, handle errors -> not_found, the rest -> internal.
Code ckr_code(CK_RV rv);

// Status(ckr_code(rv), "<what>: <CKR name>"). `what` says what coffer was doing.
Status ck_error(CK_RV rv, const std::string& what);

}  // namespace coffer::hsm
