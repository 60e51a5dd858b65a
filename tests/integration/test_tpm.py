"""cofferd on the TPM 2.0 protector, against a real swtpm per test: init, restart with secrets
readable, a bound PCR extended -> cofferd refuses to start with the PCR message (and starts again
once the measured state is restored), the wrong auth value -> refused with the lockout counter,
and the TPM going away: a running daemon keeps serving (its keyring is already unwrapped), a
daemon started while the TPM is gone exits with a clear message and starts once it is back.
Uses the harness unchanged: the TPM settings are config overrides."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from harness import CofferTestCase, HarnessError

PCR = 16  # resettable from locality 0: a test can restore "the measured state"


def _free_port_pair() -> int:
    """A port P with P+1 free too (the swtpm TCTI talks to the control channel on P+1)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            try:
                with socket.socket() as b:
                    b.bind(("127.0.0.1", p + 1))
                    return p
            except OSError:
                continue
    raise HarnessError("no free port pair for swtpm")


class Swtpm:
    """One swtpm in its own state dir; stop() is registered as a test cleanup by the caller."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="coffer-it-swtpm-"))
        self.port = _free_port_pair()
        self.proc = None

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self) -> "Swtpm":
        log = open(self.dir / "swtpm.log", "ab")
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--flags", "not-need-init,startup-clear",
             "--server", f"type=tcp,bindaddr=127.0.0.1,port={self.port}",
             "--ctrl", f"type=tcp,bindaddr=127.0.0.1,port={self.port + 1}",
             "--tpmstate", f"dir={self.dir}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError("swtpm exited: " + (self.dir / "swtpm.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise HarnessError("swtpm did not come up")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def tool(self, *args: str) -> str:
        cp = subprocess.run([args[0], "-T", self.tcti, *args[1:]], capture_output=True, text=True,
                            timeout=30)
        if cp.returncode != 0:
            raise HarnessError(f"{' '.join(args)} failed: {cp.stdout}{cp.stderr}")
        return cp.stdout

    def transient_handles(self) -> int:
        return self.tool("tpm2_getcap", "handles-transient").count("- 0x80")


@unittest.skipUnless(shutil.which("swtpm") and shutil.which("tpm2_pcrextend"),
                     "swtpm / tpm2-tools not installed (run: bash scripts/install-deps.sh)")
class TestTpmProtector(CofferTestCase):
    def tpm_instance(self, start=True, auth=None, policy_key=None):
        tpm = Swtpm().start()
        self.addCleanup(tpm.cleanup)
        section = {"tcti": tpm.tcti, "pcrs": [7, PCR], "key_id": "coffer-mk-1"}
        overrides = {"protector": {"type": "tpm"}, "protector.tpm": section}
        inst = self.new_instance(start=False, init=False, config_overrides=overrides)
        section["key_blob_file"] = str(inst.dir / "data" / "tpm-master-key.json")
        if auth is not None:
            section["auth_credential"] = "coffer-tpm-auth"
            path = inst.cred_dir / "coffer-tpm-auth"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(auth)
        if policy_key is not None:
            section["policy_public_key"] = str(policy_key)
            section["pcr_approvals_file"] = str(inst.dir / "pcr-approvals.json")
        inst.write_config()
        if policy_key is not None:
            self.approve(inst, self.operator_key)
        inst.init()
        if start:
            inst.start()
        return tpm, inst

    def operator_keypair(self, name):
        """An RSA-2048 operator key made with the openssl CLI: (private PEM path, public PEM path)."""
        d = Path(tempfile.mkdtemp(prefix="coffer-it-opkey-"))
        self.addCleanup(shutil.rmtree, d, True)
        key, pub = d / f"{name}.key.pem", d / f"{name}.pub.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", str(key)], check=True, capture_output=True, timeout=60)
        subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)],
                       check=True, capture_output=True, timeout=60)
        return key, pub

    def approve(self, inst, key):
        cp = inst.run_cofferctl("tpm", "approve", "--config", str(inst.config_path),
                                "--signing-key", str(key))
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("Approved the present values of PCR 7,16", cp.stdout)
        return cp

    def assertNoTransientHandles(self, tpm):
        self.assertEqual(tpm.transient_handles(), 0, "transient TPM objects leaked")

    def test_init_restart_and_secrets_readable(self):
        tpm, inst = self.tpm_instance()
        self.assertEqual(inst.init_result["protector"], "tpm")
        blob = Path(inst.config()["protector.tpm"]["key_blob_file"])
        self.assertEqual(blob.stat().st_mode & 0o777, 0o600)
        inst.write_secret("app/db", {"password": "s3cret"})
        inst.restart()
        r = inst.root("GET", "/v1/secret/app/db")
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "s3cret"})
        cp = inst.run_cofferctl("status", "--config", str(inst.config_path))
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("tpm", cp.stdout)
        self.assertIn("PCRs sha256:7,16", cp.stdout)
        self.assertIn("coffer-mk-1", cp.stdout)
        self.assertIn(str(blob), cp.stdout)
        inst.stop()
        self.assertNoTransientHandles(tpm)

    def test_extended_pcr_refuses_start_until_the_measured_state_is_restored(self):
        tpm, inst = self.tpm_instance()
        inst.write_secret("app/db", {"password": "s3cret"})
        inst.stop()
        tpm.tool("tpm2_pcrextend", f"{PCR}:sha256=" + "ab" * 32)
        failure = inst.run_cofferd_expecting_failure()
        self.assertFalse(failure.timed_out, "cofferd started on a changed PCR")
        self.assertNotEqual(failure.returncode, 0)
        self.assertIn(f"PCR {PCR} changed since the key was sealed; run the recovery ceremony or "
                      "restore the measured state", failure.stderr + failure.stdout)
        self.assertNoTransientHandles(tpm)
        tpm.tool("tpm2_pcrreset", str(PCR))
        inst.start()
        r = inst.root("GET", "/v1/secret/app/db")
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "s3cret"})

    def test_signed_pcr_policy_approved_update_starts_again(self):
        self.operator_key, pub = self.operator_keypair("operator")
        tpm, inst = self.tpm_instance(policy_key=pub)
        inst.write_secret("app/db", {"password": "s3cret"})
        inst.stop()
        tpm.tool("tpm2_pcrextend", f"{PCR}:sha256=" + "ab" * 32)  # "the update"
        pcr_message = (f"changed since the key was sealed; run the recovery ceremony or "
                       "restore the measured state")
        failure = inst.run_cofferd_expecting_failure()
        self.assertFalse(failure.timed_out, "cofferd started on an unapproved PCR state")
        self.assertIn(pcr_message, failure.stderr + failure.stdout)
        # An approval of the new state signed by another key: still refused.
        approvals_file = inst.dir / "pcr-approvals.json"
        other_key, _ = self.operator_keypair("intruder")
        self.approve(inst, other_key)
        self.assertEqual(len(json.loads(approvals_file.read_text())), 2)
        failure = inst.run_cofferd_expecting_failure()
        self.assertFalse(failure.timed_out, "cofferd accepted an approval signed by another key")
        self.assertNotEqual(failure.returncode, 0)
        self.assertIn("no approved PCR policy for the present PCR values is signed by the policy signing key",
                      failure.stderr + failure.stdout)
        # The operator approves the verified new state; the forged entry stays in the file and
        # must not hide the genuine one: cofferd starts, secrets read.
        self.approve(inst, self.operator_key)
        approvals = json.loads(approvals_file.read_text())
        self.assertEqual(len(approvals), 3)
        self.assertEqual(approvals[-1]["pcrs"], [7, PCR])
        inst.start()
        r = inst.root("GET", "/v1/secret/app/db")
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "s3cret"})
        inst.stop()
        self.assertNoTransientHandles(tpm)

    def test_wrong_auth_value_refused_and_counted(self):
        tpm, inst = self.tpm_instance(start=False, auth="correct horse")
        path = inst.cred_dir / "coffer-tpm-auth"
        path.write_text("battery staple")
        failure = inst.run_cofferd_expecting_failure()
        self.assertFalse(failure.timed_out, "cofferd started with the wrong auth value")
        out = failure.stderr + failure.stdout
        self.assertIn("refused the auth value", out)
        self.assertIn("dictionary-attack counter is now 1 of", out)
        self.assertNotIn("battery staple", out)
        self.assertNotIn("correct horse", out)
        path.write_text("correct horse")
        inst.start()
        self.assertNoTransientHandles(tpm)

    def test_tpm_gone_running_daemon_serves_new_daemon_exits_clearly_then_recovers(self):
        tpm, inst = self.tpm_instance()
        inst.write_secret("app/db", {"password": "s3cret"})
        tpm.kill()
        # The keyring was unwrapped at start: the request path needs no TPM.
        r = inst.root("GET", "/v1/secret/app/db")
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "s3cret"})
        inst.stop()
        failure = inst.run_cofferd_expecting_failure()
        self.assertFalse(failure.timed_out, "cofferd started without its TPM")
        self.assertNotEqual(failure.returncode, 0)
        self.assertIn("TPM cannot be reached", failure.stderr + failure.stdout)
        tpm.start()  # same state dir and port: the TPM is back
        inst.start()
        r = inst.root("GET", "/v1/secret/app/db")
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "s3cret"})


if __name__ == "__main__":
    unittest.main()
