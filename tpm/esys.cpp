// The tpm2-tss boundary: context ownership and TSS2_RC translation (see esys.h).
#include "tpm/esys.h"

#include <tss2/tss2_rc.h>

#include <cstdio>

#include "crypto/wiping_allocator.h"

namespace coffer::tpm {
namespace {

constexpr TSS2_RC kLayerMask = 0xFF0000;
constexpr TSS2_RC kTpmLayer = TSS2_TPM_RC_LAYER;

// The error number of a TPM-layer code without the parameter/handle/session index bits.
TSS2_RC tpm_base(TSS2_RC rc) {
  if (rc & TPM2_RC_FMT1) return rc & (TPM2_RC_FMT1 | 0x3F);
  return rc & 0xFFF;
}

}  // namespace

RcKind classify(TSS2_RC rc) {
  if (rc == TSS2_RC_SUCCESS) return RcKind::ok;
  if ((rc & kLayerMask) != kTpmLayer) {
    // TCTI, ESAPI, MU, ...: connection trouble is unreachable, the rest is ours or the stack's.
    const TSS2_RC base = rc & 0xFFFF;
    if (base == TSS2_BASE_RC_IO_ERROR || base == TSS2_BASE_RC_NO_CONNECTION ||
        base == TSS2_BASE_RC_TRY_AGAIN || base == TSS2_BASE_RC_NO_DECRYPT_PARAM ||
        (rc & kLayerMask) == TSS2_TCTI_RC_LAYER) {
      return RcKind::unreachable;
    }
    return RcKind::other;
  }
  switch (tpm_base(rc)) {
    case TPM2_RC_POLICY_FAIL:
      return RcKind::policy_failed;
    case TPM2_RC_AUTH_FAIL:
    case TPM2_RC_BAD_AUTH:
      return RcKind::auth_failed;
    case TPM2_RC_LOCKOUT:
      return RcKind::lockout;
    case TPM2_RC_INTEGRITY:
    case TPM2_RC_VALUE:
    case TPM2_RC_SIZE:
    case TPM2_RC_KEY:
    case TPM2_RC_BINDING:
      return RcKind::bad_blob;
    case TPM2_RC_RETRY:
    case TPM2_RC_TESTING:
    case TPM2_RC_YIELDED:
    case TPM2_RC_NV_RATE:
    case TPM2_RC_NV_UNAVAILABLE:
      return RcKind::busy;
    case TPM2_RC_OBJECT_MEMORY:
    case TPM2_RC_SESSION_MEMORY:
    case TPM2_RC_MEMORY:
    case TPM2_RC_SESSION_HANDLES:
    case TPM2_RC_OBJECT_HANDLES:
      return RcKind::no_memory;
    default:
      return RcKind::other;
  }
}

std::string rc_text(TSS2_RC rc) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%x", rc);
  const char* decoded = Tss2_RC_Decode(rc);
  return std::string(hex) + " (" + (decoded != nullptr ? decoded : "unknown") + ")";
}

Status tss_error(TSS2_RC rc, const std::string& what) {
  const std::string base = what + " failed: " + rc_text(rc);
  switch (classify(rc)) {
    case RcKind::ok:
      return Status::Ok();
    case RcKind::unreachable:
      return Error(Code::unavailable,
                   base + " (the TPM cannot be reached: check the TCTI setting and that the TPM "
                          "or its resource manager is up; coffer retries on the next request)");
    case RcKind::policy_failed:
      return Error(Code::failed_precondition, base);
    case RcKind::auth_failed:
      return Error(Code::permission_denied, base);
    case RcKind::lockout:
      return Error(Code::unavailable,
                   base + " (the TPM is in dictionary-attack lockout after too many wrong auth "
                          "values: wait for the lockout interval to pass, or clear it with the "
                          "lockout hierarchy's auth: tpm2_dictionarylockout --clear-lockout)");
    case RcKind::bad_blob:
      return Error(Code::data_loss, base);
    case RcKind::busy:
      return Error(Code::unavailable, base + " (the TPM is busy; retry)");
    case RcKind::no_memory:
      return Error(Code::resource_exhausted,
                   base + " (no free TPM object or session slot: another program may hold them; "
                          "use the resource manager, device:/dev/tpmrm0)");
    case RcKind::other:
      break;
  }
  return Error(Code::internal, base);
}

void EsysWipeFree::wipe(void* p, std::size_t n) {
  if (p != nullptr) crypto::secure_wipe(p, n);
}

Result<std::unique_ptr<EsysContext>> EsysContext::open(const std::string& tcti) {
  std::unique_ptr<EsysContext> c(new EsysContext());
  TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &c->tcti_);
  if (rc != TSS2_RC_SUCCESS) {
    c->tcti_ = nullptr;
    return Error(Code::unavailable, "the TPM cannot be reached through TCTI '" + tcti + "': " +
                                        rc_text(rc) +
                                        " (is the TPM present, the TCTI string right, and "
                                        "/dev/tpmrm0 or the simulator reachable?)");
  }
  rc = Esys_Initialize(&c->ctx_, c->tcti_, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    c->ctx_ = nullptr;
    return tss_error(rc, "Esys_Initialize on TCTI '" + tcti + "'");
  }
  return c;
}

EsysContext::~EsysContext() {
  if (ctx_ != nullptr) Esys_Finalize(&ctx_);
  if (tcti_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_);
}

}  // namespace coffer::tpm
