// SoftHsmFixture: a private SoftHSMv2 token store in a temporary directory, for tests that run
// against a real PKCS#11 module. It writes its own softhsm2.conf, points SOFTHSM2_CONF at it for
// this process (and the programs it starts), initialises a token with `softhsm2-util`, and
// removes everything on destruction. Nothing here includes PKCS#11 headers: object deletion goes
// through opensc's `pkcs11-tool` in a child process, as an operator would do it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "crypto/secret_bytes.h"

namespace coffer::testing {

class SoftHsmFixture {
 public:
  // Creates the store and one initialised token labelled `label`. Errors: internal (temp dir,
  // config file, softhsm2-util failing: its output is in the message).
  static Result<std::unique_ptr<SoftHsmFixture>> create(const std::string& label = "coffer");
  // Removes the store and restores the previous SOFTHSM2_CONF.
  ~SoftHsmFixture();
  SoftHsmFixture(const SoftHsmFixture&) = delete;
  SoftHsmFixture& operator=(const SoftHsmFixture&) = delete;

  // Another token in the same store (SoftHSM puts it in the next free slot).
  Status init_token(const std::string& label);
  // Deletes the secret key(s) labelled `key_label` from token `token_label` (default: the
  // fixture's token), from another process, with pkcs11-tool.
  Status delete_secret_key(const std::string& key_label, const std::string& token_label = "");

  const std::string& label() const { return label_; }
  const std::string& pin() const { return pin_; }
  const std::string& so_pin() const { return so_pin_; }
  const std::string& dir() const { return dir_; }
  crypto::SecretBytes pin_secret() const { return crypto::SecretBytes::copy_of(pin_); }

  // Absolute path of libsofthsm2.so, from p11-kit's softhsm2.module registration.
  static std::string module_path();

 private:
  SoftHsmFixture() = default;

  std::string label_;
  std::string pin_ = "coffer-test-pin";
  std::string so_pin_ = "coffer-test-so-pin";
  std::string dir_;
  bool had_previous_conf_ = false;
  std::string previous_conf_;
};

// Runs argv[0] (looked up in PATH) with argv and the current environment, without a shell.
// Returns its combined stdout and stderr; an exit status other than 0 is an internal error whose
// message holds the output.
Result<std::string> run_program(const std::vector<std::string>& argv);

}  // namespace coffer::testing
