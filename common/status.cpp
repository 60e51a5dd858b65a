#include "common/status.h"

namespace coffer {

const char* code_name(Code code) {
  switch (code) {
    case Code::ok: return "ok";
    case Code::invalid_argument: return "invalid_argument";
    case Code::not_found: return "not_found";
    case Code::already_exists: return "already_exists";
    case Code::permission_denied: return "permission_denied";
    case Code::failed_precondition: return "failed_precondition";
    case Code::unavailable: return "unavailable";
    case Code::resource_exhausted: return "resource_exhausted";
    case Code::data_loss: return "data_loss";
    case Code::internal: return "internal";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(code_name(code_)) + ": " + message_;
}

}  // namespace coffer
