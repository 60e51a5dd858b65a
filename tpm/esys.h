// The tpm2-tss boundary: an owned ESYS context (TCTI included), transient-handle and
// ESAPI-allocation owners that flush and wipe on every path, and TSS2_RC -> Status translation.
// Internal to tpm/: nothing outside this folder includes TSS headers.
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <memory>
#include <string>
#include <utility>

#include "common/status.h"

namespace coffer::tpm {

// What a TSS2_RC means for coffer, independent of which command returned it.
enum class RcKind {
  ok,
  unreachable,    // TCTI / connection / I/O: the TPM is gone or not there
  policy_failed,  // TPM2_RC_POLICY_FAIL (a PCR-bound policy no longer matches)
  auth_failed,    // TPM2_RC_AUTH_FAIL / BAD_AUTH: wrong auth value (counts toward DA lockout)
  lockout,        // TPM2_RC_LOCKOUT: dictionary-attack lockout
  bad_blob,       // INTEGRITY / VALUE / SIZE / ...: the data handed to the TPM is not valid
  busy,           // RETRY / TESTING / YIELDED / NV_RATE ...: transient
  no_memory,      // OBJECT_MEMORY / SESSION_MEMORY: transient slots exhausted
  other,
};
RcKind classify(TSS2_RC rc);

// "<what> failed: 0x<rc> <Tss2_RC_Decode text>" with a code chosen from classify().
Status tss_error(TSS2_RC rc, const std::string& what);
std::string rc_text(TSS2_RC rc);

// Wipes *p (sizeof(T)) and frees it with Esys_Free: tpm2-tss never wipes what it returns.
struct EsysWipeFree {
  template <typename T>
  void operator()(T* p) const {
    wipe(p, sizeof(T));
    Esys_Free(p);
  }
  static void wipe(void* p, std::size_t n);
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysWipeFree>;

// Wipes a stack TPM2B (or any struct) when the scope ends.
template <typename T>
class WipeOnExit {
 public:
  explicit WipeOnExit(T& v) : v_(v) {}
  ~WipeOnExit() { EsysWipeFree::wipe(&v_, sizeof(T)); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  T& v_;
};

// One connection to the TPM: the TCTI (from a tctildr string) and the ESYS context on it.
class EsysContext {
 public:
  // Errors: unavailable (the TCTI cannot be loaded or the TPM not reached), internal.
  static Result<std::unique_ptr<EsysContext>> open(const std::string& tcti);
  ~EsysContext();
  EsysContext(const EsysContext&) = delete;
  EsysContext& operator=(const EsysContext&) = delete;

  ESYS_CONTEXT* get() const { return ctx_; }

 private:
  EsysContext() = default;
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* ctx_ = nullptr;
};

// A transient object or session: flushed from the TPM when the owner goes out of scope (a raw
// TPM has 3 transient slots and no resource manager; a failed command flushes nothing).
class TransientHandle {
 public:
  TransientHandle() = default;
  TransientHandle(ESYS_CONTEXT* ctx, ESYS_TR handle) : ctx_(ctx), handle_(handle) {}
  ~TransientHandle() { reset(); }
  TransientHandle(TransientHandle&& o) noexcept
      : ctx_(o.ctx_), handle_(std::exchange(o.handle_, ESYS_TR_NONE)) {}
  TransientHandle& operator=(TransientHandle&& o) noexcept {
    if (this != &o) {
      reset();
      ctx_ = o.ctx_;
      handle_ = std::exchange(o.handle_, ESYS_TR_NONE);
    }
    return *this;
  }
  TransientHandle(const TransientHandle&) = delete;
  TransientHandle& operator=(const TransientHandle&) = delete;

  ESYS_TR get() const { return handle_; }
  void reset() {
    if (handle_ != ESYS_TR_NONE && ctx_ != nullptr) (void)Esys_FlushContext(ctx_, handle_);
    handle_ = ESYS_TR_NONE;
  }

 private:
  ESYS_CONTEXT* ctx_ = nullptr;
  ESYS_TR handle_ = ESYS_TR_NONE;
};

}  // namespace coffer::tpm
