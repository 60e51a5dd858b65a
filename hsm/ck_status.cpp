// CK_RV names and their mapping onto coffer's canonical codes. p11-kit exports no name table
// (p11_kit_strerror gives prose only), so the names are listed here from its pkcs11.h.
#include "hsm/ck_status.h"

#include <cstdio>

namespace coffer::hsm {

#define COFFER_CKR_NAMES(X)                                                                    \
  X(CKR_OK) X(CKR_CANCEL) X(CKR_HOST_MEMORY) X(CKR_SLOT_ID_INVALID) X(CKR_GENERAL_ERROR)       \
  X(CKR_FUNCTION_FAILED) X(CKR_ARGUMENTS_BAD) X(CKR_NO_EVENT) X(CKR_NEED_TO_CREATE_THREADS)    \
  X(CKR_CANT_LOCK) X(CKR_ATTRIBUTE_READ_ONLY) X(CKR_ATTRIBUTE_SENSITIVE)                       \
  X(CKR_ATTRIBUTE_TYPE_INVALID) X(CKR_ATTRIBUTE_VALUE_INVALID) X(CKR_ACTION_PROHIBITED)        \
  X(CKR_DATA_INVALID) X(CKR_DATA_LEN_RANGE) X(CKR_DEVICE_ERROR) X(CKR_DEVICE_MEMORY)           \
  X(CKR_DEVICE_REMOVED) X(CKR_ENCRYPTED_DATA_INVALID) X(CKR_ENCRYPTED_DATA_LEN_RANGE)          \
  X(CKR_FUNCTION_CANCELED) X(CKR_FUNCTION_NOT_PARALLEL) X(CKR_FUNCTION_NOT_SUPPORTED)          \
  X(CKR_KEY_HANDLE_INVALID) X(CKR_KEY_SIZE_RANGE) X(CKR_KEY_TYPE_INCONSISTENT)                 \
  X(CKR_KEY_NOT_NEEDED) X(CKR_KEY_CHANGED) X(CKR_KEY_NEEDED) X(CKR_KEY_INDIGESTIBLE)           \
  X(CKR_KEY_FUNCTION_NOT_PERMITTED) X(CKR_KEY_NOT_WRAPPABLE) X(CKR_KEY_UNEXTRACTABLE)          \
  X(CKR_MECHANISM_INVALID) X(CKR_MECHANISM_PARAM_INVALID) X(CKR_OBJECT_HANDLE_INVALID)         \
  X(CKR_OPERATION_ACTIVE) X(CKR_OPERATION_NOT_INITIALIZED) X(CKR_PIN_INCORRECT)                \
  X(CKR_PIN_INVALID) X(CKR_PIN_LEN_RANGE) X(CKR_PIN_EXPIRED) X(CKR_PIN_LOCKED)                 \
  X(CKR_SESSION_CLOSED) X(CKR_SESSION_COUNT) X(CKR_SESSION_HANDLE_INVALID)                     \
  X(CKR_SESSION_PARALLEL_NOT_SUPPORTED) X(CKR_SESSION_READ_ONLY) X(CKR_SESSION_EXISTS)         \
  X(CKR_SESSION_READ_ONLY_EXISTS) X(CKR_SESSION_READ_WRITE_SO_EXISTS)                          \
  X(CKR_SIGNATURE_INVALID) X(CKR_SIGNATURE_LEN_RANGE) X(CKR_TEMPLATE_INCOMPLETE)               \
  X(CKR_TEMPLATE_INCONSISTENT) X(CKR_TOKEN_NOT_PRESENT) X(CKR_TOKEN_NOT_RECOGNIZED)            \
  X(CKR_TOKEN_WRITE_PROTECTED) X(CKR_UNWRAPPING_KEY_HANDLE_INVALID)                            \
  X(CKR_UNWRAPPING_KEY_SIZE_RANGE) X(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT)                     \
  X(CKR_USER_ALREADY_LOGGED_IN) X(CKR_USER_NOT_LOGGED_IN) X(CKR_USER_PIN_NOT_INITIALIZED)      \
  X(CKR_USER_TYPE_INVALID) X(CKR_USER_ANOTHER_ALREADY_LOGGED_IN) X(CKR_USER_TOO_MANY_TYPES)    \
  X(CKR_WRAPPED_KEY_INVALID) X(CKR_WRAPPED_KEY_LEN_RANGE) X(CKR_WRAPPING_KEY_HANDLE_INVALID)   \
  X(CKR_WRAPPING_KEY_SIZE_RANGE) X(CKR_WRAPPING_KEY_TYPE_INCONSISTENT)                         \
  X(CKR_RANDOM_SEED_NOT_SUPPORTED) X(CKR_RANDOM_NO_RNG) X(CKR_DOMAIN_PARAMS_INVALID)           \
  X(CKR_CURVE_NOT_SUPPORTED) X(CKR_BUFFER_TOO_SMALL) X(CKR_SAVED_STATE_INVALID)                \
  X(CKR_INFORMATION_SENSITIVE) X(CKR_STATE_UNSAVEABLE) X(CKR_CRYPTOKI_NOT_INITIALIZED)         \
  X(CKR_CRYPTOKI_ALREADY_INITIALIZED) X(CKR_MUTEX_BAD) X(CKR_MUTEX_NOT_LOCKED)                 \
  X(CKR_NEW_PIN_MODE) X(CKR_NEXT_OTP) X(CKR_EXCEEDED_MAX_ITERATIONS)                           \
  X(CKR_FIPS_SELF_TEST_FAILED) X(CKR_LIBRARY_LOAD_FAILED) X(CKR_PIN_TOO_WEAK)                  \
  X(CKR_PUBLIC_KEY_INVALID) X(CKR_FUNCTION_REJECTED)

std::string ckr_name(CK_RV rv) {
  switch (rv) {
#define COFFER_CKR_CASE(name) \
  case name:                  \
    return #name;
    COFFER_CKR_NAMES(COFFER_CKR_CASE)
#undef COFFER_CKR_CASE
    default:
      break;
  }
  char buf[48];
  if ((rv & CKR_VENDOR_DEFINED) != 0) {
    std::snprintf(buf, sizeof buf, "CKR_VENDOR_DEFINED+0x%lx", rv & ~CKR_VENDOR_DEFINED);
  } else {
    std::snprintf(buf, sizeof buf, "CKR_0x%lx", rv);
  }
  return buf;
}

bool ckr_is_device_error(CK_RV rv) {
  switch (rv) {
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SESSION_CLOSED:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_COUNT:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_CANT_LOCK:
    case CKR_FUNCTION_CANCELED:
      return true;
    default:
      return false;
  }
}

Code ckr_code(CK_RV rv) {
  if (rv == CKR_OK) return Code::ok;
  if (ckr_is_device_error(rv)) return Code::unavailable;
  switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LOCKED:
    case CKR_USER_PIN_NOT_INITIALIZED:
    case CKR_USER_ANOTHER_ALREADY_LOGGED_IN:
      return Code::permission_denied;
    case CKR_HOST_MEMORY:
    case CKR_DEVICE_MEMORY:
      return Code::resource_exhausted;
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_WRAPPING_KEY_HANDLE_INVALID:
    case CKR_UNWRAPPING_KEY_HANDLE_INVALID:
      return Code::not_found;
    case CKR_TOKEN_WRITE_PROTECTED:
    case CKR_MECHANISM_INVALID:
    case CKR_FUNCTION_NOT_SUPPORTED:
      return Code::failed_precondition;
    default:
      return Code::internal;
  }
}

Status ck_error(CK_RV rv, const std::string& what) {
  if (rv == CKR_OK) return Status::Ok();
  return Error(ckr_code(rv), what + ": " + ckr_name(rv));
}

}  // namespace coffer::hsm
