// A PKCS#11 module loaded through p11-kit, and finding a token in it by label or PKCS#11 URI.
// Slot ids are never used to select a token: they are random in SoftHSM and renumbered by the
// p11-kit proxy, so the same configuration would point at different tokens on different runs.
#pragma once

#include <p11-kit/pkcs11.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace coffer::hsm {

// Exactly one of the two must be set.
struct TokenSelector {
  std::string label;  // CKA token label, at most 32 bytes
  std::string uri;    // RFC 7512 URI selecting a token, e.g. "pkcs11:token=coffer;serial=..."
};

// What coffer needs to know about the token it selected.
struct TokenInfo {
  CK_SLOT_ID slot = 0;  // valid only inside this module instance; never stored or configured
  CK_FLAGS flags = 0;
  std::string label;
  std::string manufacturer;
  std::string model;
  std::string serial;
};

// One p11-kit *managed* instance of a module: p11-kit reference-counts C_Initialize/C_Finalize
// and tracks this instance's sessions, so several instances (two protectors, a test's own
// session) coexist in one process. Initialised on load; finalised and released on destruction.
class Pkcs11Module {
 public:
  // `module` is a p11-kit module name ("softhsm2", from /usr/share/p11-kit/modules/*.module or
  // /etc/pkcs11/modules/) or an absolute path to a .so. Errors: invalid_argument (empty, or a
  // relative path), not_found (name not registered, or the file does not load), and the
  // C_Initialize failure translated (the module's configuration is usually at fault).
  static Result<std::unique_ptr<Pkcs11Module>> load(const std::string& module);
  ~Pkcs11Module();
  Pkcs11Module(const Pkcs11Module&) = delete;
  Pkcs11Module& operator=(const Pkcs11Module&) = delete;

  CK_FUNCTION_LIST* functions() const { return fn_; }
  // As given to load(): the name or the path.
  const std::string& name() const { return name_; }

  // The one initialised token matching the selector. Errors: invalid_argument (selector or URI
  // malformed, URI carries a PIN or names an object), not_found (no match: the message lists
  // the labels present), failed_precondition (several tokens match), unavailable/internal.
  Result<TokenInfo> find_token(const TokenSelector& selector) const;

 private:
  Pkcs11Module(CK_FUNCTION_LIST* fn, std::string name) : fn_(fn), name_(std::move(name)) {}

  CK_FUNCTION_LIST* fn_;
  std::string name_;
};

// A fixed-width, blank-padded PKCS#11 text field without its padding.
std::string unpad(const unsigned char* field, std::size_t size);

}  // namespace coffer::hsm
