"""The tamper-evident audit log against a real cofferd (issue 5, brief §5): requests and refusals
leave records; no secret, token or PIN appears in clear; an unwritable audit file refuses the
request (503) without returning the secret, and after SIGHUP the chain continues; `cofferctl
audit verify` passes on the live log after a stop and names an edited record."""

import json
import os
import secrets
import signal
import subprocess
import time
import unittest

from harness import CofferTestCase, setup_web

REFUSED = {"errors": ["audit log unavailable: request refused"]}


def audited_instance(make, audit: dict | None = None, **kw):
    inst = make(start=False, **kw)
    inst.audit_path = inst.dir / "audit" / "audit.log"
    inst.audit_path.parent.mkdir()
    inst.config_overrides = {"audit": {"path": str(inst.audit_path), "checkpoint_every": 50, **(audit or {})}}
    inst.write_config()
    inst.start()
    return inst


def records(inst) -> list:
    return [json.loads(line) for line in inst.audit_path.read_text().splitlines()]


class TestAudit(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst = audited_instance(cls.class_instance)
        setup_web(cls.inst)

    def audit_hash(self, value: str) -> str:
        r = self.inst.root("PUT", "/v1/sys/audit-hash/file", {"input": value})
        return self.assertEnvelope(r)["data"]["hash"]

    def test_requests_leave_request_and_response_records_without_secrets_in_clear(self):
        marker = "audit-marker-" + secrets.token_hex(16)
        self.inst.write_secret("app/db", {"password": marker, "pin": 424242})
        auth = self.inst.login()
        token = auth["client_token"]
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token)
        self.assertEqual(self.assertEnvelope(r)["data"]["password"], marker)

        raw = self.inst.audit_path.read_bytes()
        for label, value in {"secret value": marker, "root token": self.inst.root_token,
                             "login token": token, "PIN": self.inst.pin, "SO PIN": self.inst.so_pin,
                             "numeric secret": "424242"}.items():
            self.assertNotIn(value.encode(), raw, f"{label} found in clear in the audit log")
        recs = records(self.inst)
        reads = [x for x in recs if x.get("request", {}).get("path") == "secret/app/db"
                 and x["request"]["operation"] == "read"]
        self.assertEqual([x["type"] for x in reads[-2:]], ["request", "response"], reads)
        req, resp = reads[-2:]
        self.assertEqual(req["request"]["id"], resp["request"]["id"])
        self.assertEqual(req["auth"]["client_token"], self.audit_hash(token))
        self.assertEqual(req["auth"]["accessor"], self.audit_hash(auth["accessor"]))
        self.assertEqual(req["auth"]["metadata"]["common_name"], "web01")
        self.assertEqual(resp["response"]["status_code"], 200)
        self.assertEqual(resp["response"]["data"]["password"], self.audit_hash(marker))
        self.assertEqual(req["request"]["remote_address"], "127.0.0.1")
        for x in recs:  # the chain fields are on every record
            self.assertIsInstance(x["seq"], int)
            self.assertEqual(len(x["prev"]), 64)
        seqs = [x["seq"] for x in recs]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        login = [x for x in recs if x.get("request", {}).get("path") == "auth/cert/login" and x["type"] == "response"]
        self.assertEqual(login[-1]["response"]["auth"]["client_token"], self.audit_hash(token))

    def test_refused_requests_are_audited(self):
        bad = "hvs." + secrets.token_urlsafe(24)
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/app/x", cert="unit-web", token=bad))
        web = self.inst.login()["client_token"]
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/other/y", cert="unit-web", token=web))
        self.assertJSONError(self.inst.request("POST", "/v1/auth/cert/login", {"name": "web"}, cert="unit-other"), 400)
        recs = records(self.inst)

        def last(path, kind):
            hits = [x for x in recs if x.get("request", {}).get("path") == path and x["type"] == kind]
            self.assertTrue(hits, f"no {kind} record for {path}")
            return hits[-1]
        bad_token = last("secret/app/x", "request")
        self.assertIn("invalid token", bad_token["error"])
        self.assertEqual(bad_token["request"]["client_token"], self.audit_hash(bad))
        self.assertNotIn(bad.encode(), self.inst.audit_path.read_bytes())
        denied = last("secret/other/y", "response")
        self.assertIn("permission denied", denied["error"])
        self.assertEqual(denied["response"]["status_code"], 403)
        self.assertEqual(denied["auth"]["policies"], ["default", "web"])
        self.assertEqual(last("auth/cert/login", "response")["response"]["status_code"], 400)

    def test_health_is_not_audited(self):
        before = len(records(self.inst))
        for path in ("/v1/sys/health", "/v1/sys/seal-status", "/v1/sys/leader"):
            self.assertStatus(self.inst.request("GET", path, cert="unit-admin"), 200)
        self.assertEqual(len(records(self.inst)), before)


class TestAuditFailClosed(CofferTestCase):
    def verify(self, inst, *files):
        return inst.run_cofferctl("audit", "verify", "--config", str(inst.config_path), *map(str, files))

    def test_unwritable_audit_file_refuses_then_sighup_continues_the_chain(self):
        inst = audited_instance(self.new_instance)
        setup_web(inst)
        marker = "failclosed-marker-" + secrets.token_hex(16)
        inst.write_secret("app/db", {"password": marker})
        web = inst.login()["client_token"]

        # As root, chmod does not stop writes: replace the file with a directory instead.
        moved = inst.audit_path.with_name("audit.log.1")
        os.rename(inst.audit_path, moved)
        os.mkdir(inst.audit_path)
        r = inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=web)
        self.assertStatus(r, 503)
        self.assertEqual(r.json, REFUSED)
        self.assertNotIn(marker.encode(), r.body)
        self.assertStatus(inst.root("PUT", "/v1/secret/app/new", {"v": "x"}), 503)
        self.assertIn("audit log unavailable", inst.log_text(since_start=True))
        self.assertIn("replaced", inst.log_text(since_start=True))

        # SIGHUP while it is still a directory: still refused.
        inst.proc.send_signal(signal.SIGHUP)
        self.wait_for_log(inst, "audit log reopen failed")
        self.assertStatus(inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=web), 503)

        os.rmdir(inst.audit_path)
        inst.proc.send_signal(signal.SIGHUP)
        self.wait_for_log(inst, "reopened at record")
        r = inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=web)
        self.assertEqual(self.assertEnvelope(r)["data"]["password"], marker)
        self.assertEqual(inst.stop(), 0)

        cp = self.verify(inst, moved, inst.audit_path)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("ok:", cp.stdout)
        # The new file alone is anchored by its reopen checkpoint; the old one alone ends early.
        cp = self.verify(inst, moved)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("truncated", cp.stdout)

    def test_verify_passes_on_the_live_log_after_stop_and_names_an_edited_record(self):
        inst = audited_instance(self.new_instance)
        setup_web(inst)
        for i in range(5):
            inst.write_secret(f"app/s{i}", {"v": str(i)})
        self.assertEqual(inst.stop(), 0)
        cp = self.verify(inst)  # default: the [audit] path from the config
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        cp = inst.run_cofferctl("audit", "verify", "--config", str(inst.config_path), "--format", "json")
        report = json.loads(cp.stdout)
        self.assertTrue(report["ok"])
        self.assertTrue(report["database_head"]["stopped"])
        self.assertEqual(report["last_seq"], report["database_head"]["seq"])

        lines = inst.audit_path.read_bytes().split(b"\n")
        target = next(i for i, line in enumerate(lines) if b'"path":"secret/app/s2"' in line)
        offset = sum(len(line) + 1 for line in lines[:target])
        lines[target] = lines[target].replace(b"secret/app/s2", b"secret/app/s9")
        inst.audit_path.write_bytes(b"\n".join(lines))
        cp = self.verify(inst, inst.audit_path)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        seq = json.loads(lines[target])["seq"]
        self.assertIn(f"FAILED at record {seq} ", cp.stdout)
        self.assertIn(f"byte offset {offset})", cp.stdout)
        self.assertIn("edited", cp.stdout)

    def test_audit_hash_cli_matches_the_log(self):
        inst = audited_instance(self.new_instance)
        token = inst.root_token
        self.assertStatus(inst.root("GET", "/v1/sys/mounts"), 200)
        inst.stop()
        cp = inst.run_cofferctl("audit", "hash", "--config", str(inst.config_path), token)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertTrue(cp.stdout.strip().startswith("hmac-sha256:"))
        self.assertIn(cp.stdout.strip().encode(), inst.audit_path.read_bytes())

    def test_full_file_system_refuses_and_the_chain_continues_once_space_is_back(self):
        inst = audited_instance(self.new_instance, audit={"fsync": "always"})
        setup_web(inst)
        marker = "diskfull-marker-" + secrets.token_hex(16)
        inst.write_secret("app/db", {"password": marker})
        web = inst.login()["client_token"]
        size = inst.audit_path.stat().st_size
        pid = str(inst.proc.pid)
        # RLIMIT_FSIZE on the running daemon: the next record is written short, like on a full disk.
        subprocess.run(["prlimit", "--pid", pid, f"--fsize={size + 64}:unlimited"], check=True)
        try:
            r = inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=web)
            self.assertStatus(r, 503)
            self.assertEqual(r.json, REFUSED)
            self.assertNotIn(marker.encode(), r.body)
            self.assertEqual(inst.audit_path.stat().st_size, size, "a partial record was left behind")
        finally:
            subprocess.run(["prlimit", "--pid", pid, "--fsize=unlimited:unlimited"], check=True)
        # EFBIG from the limit, or ENOSPC when the kernel reports the short write that way.
        self.assertRegex(inst.log_text(since_start=True), "File too large|No space left on device")
        r = inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=web)
        self.assertEqual(self.assertEnvelope(r)["data"]["password"], marker)
        self.assertEqual(inst.stop(), 0)
        cp = self.verify(inst)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def test_size_rotation_keeps_one_verifiable_chain(self):
        inst = audited_instance(self.new_instance, audit={"rotate_bytes": 4096, "fsync": "always"})
        for i in range(15):
            inst.write_secret(f"r{i}", {"v": str(i)})
        self.assertEqual(inst.stop(), 0)
        rotated = sorted(inst.audit_path.parent.glob("audit.log.*"))
        self.assertGreaterEqual(len(rotated), 2, "expected at least two rotations")
        cp = self.verify(inst, *rotated, inst.audit_path)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        cp = self.verify(inst, rotated[0], inst.audit_path)  # a rotated file left out
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("deleted", cp.stdout)

    def test_bad_audit_config_and_a_cut_log_stop_the_start(self):
        inst = audited_instance(self.new_instance)
        inst.write_secret("s", {"v": "1"})
        self.assertEqual(inst.stop(), 0)
        bad = inst.write_config(inst.dir / "bad.toml", audit={"path": str(inst.audit_path), "fsync": "sometimes"})
        failure = inst.run_cofferd_expecting_failure(bad)
        self.assertEqual(failure.returncode, 1, repr(failure))
        self.assertIn("audit.fsync", failure.stderr)
        # Removing the tail (the shutdown checkpoint the database head points at) is noticed.
        lines = inst.audit_path.read_bytes().splitlines(keepends=True)
        inst.audit_path.write_bytes(b"".join(lines[:-1]))
        failure = inst.run_cofferd_expecting_failure()
        self.assertEqual(failure.returncode, 1, repr(failure))
        self.assertIn("records were removed", failure.stderr)

    def wait_for_log(self, inst, text: str, timeout: float = 10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in inst.log_text(since_start=True):
                return
            time.sleep(0.05)
        self.fail(f"{text!r} not in the cofferd log:\n{inst.log_text(since_start=True)[-2000:]}")


if __name__ == "__main__":
    unittest.main()
