// SwtpmFixture: one private swtpm (TPM 2.0 simulator) per test, in its own state directory, on a
// free TCP port pair (server P, control P+1), stopped (SIGTERM, then SIGKILL) when the fixture goes, also when a test fails.
// Like SoftHsmFixture it includes no TSS header: PCR extension and the transient-handle census go
// through tpm2-tools in a child process, as an operator would do them.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace coffer::testing {

class SwtpmFixture {
 public:
  // Starts swtpm (startup-clear, fresh state) and waits until it accepts connections. Sets
  // TSS2_LOG=all+none for this process so ESAPI does not print every expected TPM error.
  // Errors: internal (no swtpm, no free port, swtpm exited: its log is in the message).
  static Result<std::unique_ptr<SwtpmFixture>> create();
  ~SwtpmFixture();
  SwtpmFixture(const SwtpmFixture&) = delete;
  SwtpmFixture& operator=(const SwtpmFixture&) = delete;

  // "swtpm:host=127.0.0.1,port=<p>": the TCTI string for coffer and for tpm2-tools.
  std::string tcti() const;
  const std::string& dir() const { return dir_; }

  // Stops the simulator (SIGKILL: as abrupt as a crash) / starts it again on the same port with
  // the same state (a restart resets the PCRs, like a reboot).
  void kill();
  Status restart();

  // TPM2_PCR_Extend of `pcr` (sha256 bank) with a fixed digest, through tpm2_pcrextend.
  Status extend_pcr(unsigned pcr);
  // TPM2_PCR_Reset (PCR 16 is resettable from locality 0), through tpm2_pcrreset.
  Status reset_pcr(unsigned pcr);
  // How many transient objects and loaded sessions the TPM holds (tpm2_getcap).
  Result<int> transient_objects();
  Result<int> loaded_sessions();

 private:
  SwtpmFixture() = default;
  Status start();

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace coffer::testing
