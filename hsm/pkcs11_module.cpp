// Loading a PKCS#11 module through p11-kit and selecting a token by label or URI.
//
// p11-kit 0.24 has no "load the registered module called X" call: p11_kit_module_load() treats
// a bare name as a file under its module directory (it looks for .../pkcs11/softhsm2). So for a
// name we load the registered set (p11_kit_modules_load, which only dlopen()s: nothing is
// initialised), keep the one p11_kit_module_for_name() returns and release the others.
#include "hsm/pkcs11_module.h"

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "hsm/ck_status.h"

namespace coffer::hsm {
namespace {

std::string p11_kit_last_message() {
  const char* m = p11_kit_message();
  return m != nullptr ? std::string(m) : std::string("no detail from p11-kit");
}

// The registered module called `name`, the others released. The array p11-kit returns is
// compacted so that it holds only the unwanted modules and then released by p11-kit itself,
// which frees it.
Result<CK_FUNCTION_LIST*> load_registered(const std::string& name) {
  CK_FUNCTION_LIST** modules = p11_kit_modules_load(nullptr, 0);
  if (modules == nullptr) {
    return Error(Code::internal, "p11-kit could not load its registered PKCS#11 modules: " +
                                     p11_kit_last_message());
  }
  CK_FUNCTION_LIST* wanted = p11_kit_module_for_name(modules, name.c_str());
  std::string registered;
  std::size_t kept = 0;
  for (std::size_t i = 0; modules[i] != nullptr; ++i) {
    if (char* n = p11_kit_module_get_name(modules[i]); n != nullptr) {
      registered += (registered.empty() ? "" : ", ") + std::string(n);
      std::free(n);
    }
    if (modules[i] != wanted) modules[kept++] = modules[i];
  }
  modules[kept] = nullptr;
  p11_kit_modules_release(modules);
  if (wanted == nullptr) {
    return Error(Code::not_found,
                 "PKCS#11 module '" + name + "' is not registered with p11-kit (registered: " +
                     (registered.empty() ? "none" : registered) +
                     "); install its .module file under /usr/share/p11-kit/modules/ or "
                     "/etc/pkcs11/modules/, or configure the module's absolute path");
  }
  return wanted;
}

// A parsed URI, freed on scope exit.
struct UriGuard {
  P11KitUri* uri = p11_kit_uri_new();
  ~UriGuard() { p11_kit_uri_free(uri); }
  UriGuard() = default;
  UriGuard(const UriGuard&) = delete;
  UriGuard& operator=(const UriGuard&) = delete;
};

bool label_matches(const CK_TOKEN_INFO& info, const std::string& label) {
  return unpad(info.label, sizeof info.label) == label;
}

}  // namespace

std::string unpad(const unsigned char* field, std::size_t size) {
  std::size_t n = size;
  while (n > 0 && (field[n - 1] == ' ' || field[n - 1] == '\0')) --n;
  return std::string(reinterpret_cast<const char*>(field), n);
}

Result<std::unique_ptr<Pkcs11Module>> Pkcs11Module::load(const std::string& module) {
  if (module.empty()) {
    return Error(Code::invalid_argument,
                 "no PKCS#11 module configured (a p11-kit module name such as 'softhsm2', or "
                 "the absolute path of the module's .so)");
  }
  CK_FUNCTION_LIST* fn = nullptr;
  if (module.front() == '/') {
    // Flags 0: a managed module (see the class comment in the header).
    fn = p11_kit_module_load(module.c_str(), 0);
    if (fn == nullptr) {
      return Error(Code::not_found,
                   "cannot load PKCS#11 module '" + module + "': " + p11_kit_last_message());
    }
  } else if (module.find('/') != std::string::npos) {
    return Error(Code::invalid_argument,
                 "PKCS#11 module '" + module +
                     "' is a relative path; give a p11-kit module name or an absolute path");
  } else {
    COFFER_ASSIGN_OR_RETURN(fn, load_registered(module));
  }

  const CK_RV rv = p11_kit_module_initialize(fn);
  if (rv != CKR_OK) {
    const std::string detail = p11_kit_last_message();
    p11_kit_module_release(fn);
    return ck_error(rv, "initializing PKCS#11 module '" + module + "' failed (" + detail +
                            "; check the module's own configuration)");
  }
  return std::unique_ptr<Pkcs11Module>(new Pkcs11Module(fn, module));
}

Pkcs11Module::~Pkcs11Module() {
  // Finalize of a managed instance closes only this instance's sessions; the real C_Finalize
  // runs when the last instance in the process goes.
  (void)p11_kit_module_finalize(fn_);
  p11_kit_module_release(fn_);
}

Result<TokenInfo> Pkcs11Module::find_token(const TokenSelector& selector) const {
  if (selector.label.empty() == selector.uri.empty()) {
    return Error(Code::invalid_argument,
                 "select the PKCS#11 token with exactly one of token_label and token_uri");
  }
  if (selector.label.size() > sizeof(CK_TOKEN_INFO{}.label)) {
    return Error(Code::invalid_argument, "token label '" + selector.label +
                                             "' is longer than PKCS#11's 32-byte limit");
  }

  UriGuard uri;
  if (!selector.uri.empty()) {
    if (uri.uri == nullptr) return Error(Code::resource_exhausted, "p11_kit_uri_new failed");
    const int rc = p11_kit_uri_parse(selector.uri.c_str(), P11_KIT_URI_FOR_TOKEN, uri.uri);
    if (rc != P11_KIT_URI_OK) {
      return Error(Code::invalid_argument,
                   "token URI '" + selector.uri + "' is malformed: " + p11_kit_uri_message(rc));
    }
    if (p11_kit_uri_get_pin_value(uri.uri) != nullptr ||
        p11_kit_uri_get_pin_source(uri.uri) != nullptr) {
      // Not echoing the URI: it holds a PIN.
      return Error(Code::invalid_argument,
                   "the token URI carries a PIN (pin-value/pin-source); remove it and pass the "
                   "PIN as a systemd credential");
    }
    if (p11_kit_uri_get_module_name(uri.uri) != nullptr ||
        p11_kit_uri_get_module_path(uri.uri) != nullptr) {
      return Error(Code::invalid_argument,
                   "token URI '" + selector.uri +
                       "' names a module; choose the module with the module setting instead");
    }
    if (p11_kit_uri_any_unrecognized(uri.uri) != 0) {
      return Error(Code::invalid_argument,
                   "token URI '" + selector.uri +
                       "' has attributes that do not describe a token (object=, id=, slot-...); "
                       "the master key is chosen by key_label");
    }
  }
  const std::string wanted =
      selector.uri.empty() ? "label '" + selector.label + "'" : "URI '" + selector.uri + "'";

  std::vector<CK_SLOT_ID> slots;
  for (int attempt = 0;; ++attempt) {
    CK_ULONG count = 0;
    CK_RV rv = fn_->C_GetSlotList(CK_TRUE, nullptr, &count);
    if (rv != CKR_OK) return ck_error(rv, "listing the slots of PKCS#11 module '" + name_ + "'");
    slots.resize(count);
    rv = fn_->C_GetSlotList(CK_TRUE, slots.data(), &count);
    // A token inserted between the two calls: ask again, a few times at most.
    if (rv == CKR_BUFFER_TOO_SMALL && attempt < 3) continue;
    if (rv != CKR_OK) return ck_error(rv, "listing the slots of PKCS#11 module '" + name_ + "'");
    slots.resize(count);
    break;
  }

  std::vector<TokenInfo> matches;
  std::string present;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    const CK_RV rv = fn_->C_GetTokenInfo(slot, &info);
    if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED) continue;
    if (rv != CKR_OK) return ck_error(rv, "reading token information in module '" + name_ + "'");
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    const std::string label = unpad(info.label, sizeof info.label);
    present += (present.empty() ? "'" : ", '") + label + "'";
    const bool match = selector.uri.empty() ? label_matches(info, selector.label)
                                            : p11_kit_uri_match_token_info(uri.uri, &info) == 1;
    if (!match) continue;
    TokenInfo t;
    t.slot = slot;
    t.flags = info.flags;
    t.label = label;
    t.manufacturer = unpad(info.manufacturerID, sizeof info.manufacturerID);
    t.model = unpad(info.model, sizeof info.model);
    t.serial = unpad(info.serialNumber, sizeof info.serialNumber);
    matches.push_back(std::move(t));
  }

  if (matches.empty()) {
    return Error(Code::not_found,
                 "no PKCS#11 token with " + wanted + " in module '" + name_ +
                     "' (initialised tokens: " + (present.empty() ? "none" : present) +
                     "); check the token setting, or initialise the token first");
  }
  if (matches.size() > 1) {
    std::string serials;
    for (const auto& m : matches) serials += (serials.empty() ? "" : ", ") + m.serial;
    return Error(Code::failed_precondition,
                 std::to_string(matches.size()) + " tokens in module '" + name_ + "' match " +
                     wanted + " (serials " + serials +
                     "); select one with token_uri = \"pkcs11:token=<label>;serial=<serial>\"");
  }
  return std::move(matches.front());
}

}  // namespace coffer::hsm
