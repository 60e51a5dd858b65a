// Shared behaviour of KeyProtector implementations (see key_protector.h).
#include "keys/key_protector.h"

#include "crypto/random.h"

namespace coffer::keys {

Status round_trip_self_test(KeyProtector& protector, const std::string& what) {
  COFFER_ASSIGN_OR_RETURN(auto probe, crypto::random_key(32));
  auto wrapped = protector.wrap(probe);
  if (!wrapped.ok()) return wrapped.status().with_context(what);
  auto back = protector.unwrap(*wrapped);
  if (!back.ok()) return back.status().with_context(what);
  if (!back->equals(probe)) {
    return Error(Code::internal, what + ": the unwrapped key differs from the one wrapped");
  }
  return Status::Ok();
}

}  // namespace coffer::keys
