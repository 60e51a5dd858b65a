"""cofferctl init/status and cofferd's life: restart keeps secrets and tokens, SIGTERM exits 0,
and every broken start-up (wrong or missing PIN, token or master key missing, unreadable
database, bad certificate) refuses to start with one clear line, without leaking the PIN.
Under COFFER_TEST_PROTECTOR=tpm the PIN is the TPM auth value, "the master key in the token" is
the key-blob file, "token missing" is an unreachable TPM."""

import json
import os
import re
import shutil
import unittest

from harness import CREDENTIAL_WORD, MASTER_KEY_LABEL, TPM, CofferTestCase, free_port, setup_web


class TestInit(CofferTestCase):
    def test_init_json_output_and_master_key_in_token(self):
        inst = self.new_instance(start=False)
        doc = inst.init_result
        self.assertLessEqual({"root_token", "master_key", "protector"}, set(doc), doc.keys())
        self.assertRegex(doc["root_token"], r"^hvs\.[A-Za-z0-9_\-]{20,}$")
        self.assertEqual(doc["master_key"], MASTER_KEY_LABEL)
        self.assertEqual(doc["protector"], inst.protector)
        if TPM:
            # The master key: a TPM object whose blobs (no secret) are in the key-blob file, 0600.
            # (fixedTPM/fixedParent and the policy are checked by cofferd's self-test at start.)
            self.assertTrue(inst.key_blob_file.exists(), "init wrote no TPM key-blob file")
            self.assertEqual(inst.key_blob_file.stat().st_mode & 0o777, 0o600)
        else:
            # The master key: an AES-256 secret key object, sensitive and never extractable.
            objects = inst.token_objects()
            block = re.search(r"Secret Key Object; AES length 32\s*\n\s*label:\s*" + re.escape(MASTER_KEY_LABEL)
                              + r"\s*\n(?:.*\n)*?\s*Access:\s*(?P<access>.*)", objects)
            self.assertIsNotNone(block, f"no AES-256 key {MASTER_KEY_LABEL!r} in the token:\n{objects}")
            self.assertIn("sensitive", block.group("access"))
            self.assertIn("never extractable", block.group("access"))
        self.assertTrue(inst.db_path.exists(), "init created no sqlite file")
        # And the instance starts on it, with the printed root token being root.
        inst.start()
        r = inst.root("GET", "/v1/auth/token/lookup-self")
        self.assertEqual(self.assertEnvelope(r)["data"]["policies"], ["root"])

    def test_init_twice_refused_and_harmless(self):
        inst = self.new_instance()
        inst.write_secret("keep/me", {"v": "kept"})
        inst.stop()
        db_before = inst.db_path.read_bytes()
        blob_before = inst.key_blob_file.read_bytes() if TPM else None
        cp = inst.run_cofferctl("init", "--config", str(inst.config_path), "--format", "json")
        self.assertNotEqual(cp.returncode, 0, f"second init succeeded:\n{cp.stdout}\n{cp.stderr}")
        self.assertTrue((cp.stderr + cp.stdout).strip(), "second init failed without a message")
        self.assertNotIn("hvs.", cp.stdout, "second init printed a token")
        self.assertEqual(inst.db_path.read_bytes(), db_before, "second init modified the database")
        if TPM:
            self.assertEqual(inst.key_blob_file.read_bytes(), blob_before,
                             "second init modified the TPM key-blob file")
        else:
            self.assertIn(f"label:      {MASTER_KEY_LABEL}", inst.token_objects())
        inst.start()
        self.assertEqual(self.assertEnvelope(inst.root("GET", "/v1/secret/keep/me"))["data"], {"v": "kept"})

    def test_init_text_format_prints_the_root_token(self):
        inst = self.new_instance(start=False, init=False)
        cp = inst.run_cofferctl("init", "--config", str(inst.config_path))
        self.assertEqual(cp.returncode, 0, f"{cp.stdout}\n{cp.stderr}")
        tokens = re.findall(r"hvs\.[A-Za-z0-9_\-]+", cp.stdout)
        self.assertEqual(len(set(tokens)), 1, f"expected one root token in:\n{cp.stdout}")
        with self.assertRaises(ValueError):
            json.loads(cp.stdout)
        inst.root_token = tokens[0]
        inst.start()
        r = inst.root("GET", "/v1/auth/token/lookup-self")
        self.assertEqual(self.assertEnvelope(r)["data"]["policies"], ["root"])

    def test_init_with_pin_file_flag(self):
        inst = self.new_instance(start=False, init=False)
        pin_copy = inst.dir / "elsewhere-pin"
        shutil.copy(inst.pin_file, pin_copy)
        os.chmod(pin_copy, 0o600)
        os.remove(inst.pin_file)  # not reachable through CREDENTIALS_DIRECTORY either
        cp = inst.run_cofferctl("init", "--config", str(inst.config_path), "--pin-file", str(pin_copy),
                                "--format", "json", env=inst.env(credentials=False))
        self.assertEqual(cp.returncode, 0, f"{cp.stdout}\n{cp.stderr}")
        self.assertTrue(json.loads(cp.stdout)["root_token"].startswith("hvs."))
        self.assertNotIn(inst.pin, cp.stdout + cp.stderr)

    def test_status(self):
        inst = self.new_instance()
        for running in (True, False):
            with self.subTest(daemon_running=running):
                if not running:
                    inst.stop()
                cp = inst.run_cofferctl("status", "--config", str(inst.config_path))
                self.assertEqual(cp.returncode, 0, f"{cp.stdout}\n{cp.stderr}")
                self.assertIn(inst.protector, cp.stdout)
                self.assertIn(MASTER_KEY_LABEL, cp.stdout)
                self.assertNotIn(inst.pin, cp.stdout + cp.stderr)


class TestRestart(CofferTestCase):
    def test_sigterm_exits_zero_and_restart_keeps_everything(self):
        inst = self.new_instance()
        setup_web(inst)
        inst.write_secret("app/db", {"password": "survives"})
        inst.write_secret("app/other", {"k": "v"})
        auth = inst.login()
        token = auth["client_token"]
        self.assertEqual(inst.stop(), 0, f"SIGTERM should exit 0; log:\n{inst.log_text()[-2000:]}")
        inst.start()
        r = inst.root("GET", "/v1/secret/app/db")
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "survives"})
        self.assertEqual(sorted(self.assertEnvelope(inst.root("LIST", "/v1/secret/app/"))["data"]["keys"]),
                         ["db", "other"])
        # Tokens are persisted (as keyed hashes): the login token and its binding survive.
        r = inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token)
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "survives"})
        self.assertPermissionDenied(inst.request("GET", "/v1/secret/app/db", cert="unit-admin", token=token))
        # Policies and roles too: a new login works.
        self.assertIn("web", inst.login()["policies"])
        self.assertEqual(inst.stop(), 0)


    def test_a_second_cofferd_on_the_same_database_refuses_to_start(self):
        # One daemon per database: its token cache and limits are per process (daemon/instance_lock.h).
        inst = self.new_instance()
        setup_web(inst)
        inst.write_secret("app/db", {"password": "first"})
        token = inst.login()["client_token"]
        second = inst.write_config(inst.dir / "second.toml", listener={"port": free_port()})
        res = inst.run_cofferd_expecting_failure(config=second, beside_running=True)
        self.assertFalse(res.timed_out, f"a second cofferd kept running on the same database: {res!r}")
        self.assertGreater(res.returncode, 0, repr(res))
        self.assertIn("another cofferd is serving " + str(inst.db_path), res.stderr)
        # The first one is untouched, and once it stops the database is free again.
        r = inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token)
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "first"})
        self.assertEqual(inst.stop(), 0)
        inst.start()
        r = inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token)
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "first"})
        self.assertEqual(inst.stop(), 0)


class TestStartFailures(CofferTestCase):
    def setUp(self):
        self.inst = self.new_instance()
        self.inst.write_secret("app/db", {"password": "intact"})
        self.assertEqual(self.inst.stop(), 0)

    def assertRefusesToStart(self, *, mentions=(), config=None, env=None):
        res = self.inst.run_cofferd_expecting_failure(config=config, env=env)
        self.assertFalse(res.timed_out, f"cofferd kept running instead of refusing to start: {res!r}")
        self.assertNotEqual(res.returncode, 0, repr(res))
        self.assertGreater(res.returncode, 0, f"died by a signal rather than exiting: {res!r}")
        self.assertTrue(res.stderr.strip(), f"refused without a message: {res!r}")
        for word in mentions:
            self.assertIn(word.lower(), res.stderr.lower(), f"stderr should mention {word!r}: {res!r}")
        self.assertNotIn(self.inst.pin, res.stderr + res.stdout, "the PIN leaked")
        return res

    def assertStartsAgain(self):
        self.inst.start()
        r = self.inst.root("GET", "/v1/secret/app/db")
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "intact"})

    def test_wrong_pin(self):
        wrong = "wrong-" + self.inst.pin[:6]
        self.inst.write_pin(wrong)
        res = self.assertRefusesToStart(mentions=[CREDENTIAL_WORD])
        self.assertNotIn(wrong, res.stderr + res.stdout, "the wrong PIN was echoed")
        if TPM:  # a wrong auth value counts toward the TPM's dictionary-attack lockout: say so
            self.assertIn("dictionary-attack counter is now 1 of", res.stderr)
        self.inst.write_pin()
        self.assertStartsAgain()

    def test_missing_pin_credential(self):
        os.remove(self.inst.pin_file)
        self.assertRefusesToStart(mentions=[CREDENTIAL_WORD])
        self.inst.write_pin()
        self.assertStartsAgain()

    def test_no_credentials_directory(self):
        env = self.inst.env(credentials=False)
        # TPM: the message names the credential (coffer-tpm-auth) but not the words "auth value".
        self.assertRefusesToStart(env=env, mentions=[self.inst.pin_file.name if TPM else "PIN"])

    def test_pin_is_not_taken_from_the_environment(self):
        # Even with the PIN offered in plausible variables, cofferd insists on the credential file.
        env = self.inst.env(credentials=False, COFFER_PKCS11_PIN=self.inst.pin, PKCS11_PIN=self.inst.pin,
                            COFFER_PIN=self.inst.pin)
        self.assertRefusesToStart(env=env)

    def test_master_key_deleted_from_token(self):
        # TPM: the key-blob file is deleted (the message names the key and the file).
        self.inst.delete_master_key()
        mentions = [MASTER_KEY_LABEL, str(self.inst.key_blob_file)] if TPM else [MASTER_KEY_LABEL]
        self.assertRefusesToStart(mentions=mentions)

    def test_token_missing(self):
        if TPM:  # the TPM equivalent: nothing answers at the configured TCTI
            dead = self.inst.swtpm.tcti.rsplit("=", 1)[0] + "=1"  # port 1: nothing listens
            cfg = self.inst.write_config(self.inst.dir / "wrong-tcti.toml", **{"protector.tpm": {"tcti": dead}})
            self.assertRefusesToStart(config=cfg, mentions=["TPM cannot be reached"])
            return
        cfg = self.inst.write_config(self.inst.dir / "wrong-token.toml",
                                     **{"protector.pkcs11": {"token_label": "no-such-token"}})
        self.assertRefusesToStart(config=cfg, mentions=["no-such-token"])

    def test_wrong_key_label(self):
        if TPM:  # the TPM equivalent: key_id names a key the keyring was not wrapped with
            cfg = self.inst.write_config(self.inst.dir / "wrong-key.toml",
                                         **{"protector.tpm": {"key_id": "coffer-mk-9"}})
            self.assertRefusesToStart(config=cfg, mentions=["coffer-mk-9"])
            return
        cfg = self.inst.write_config(self.inst.dir / "wrong-key.toml",
                                     **{"protector.pkcs11": {"key_label": "coffer-mk-9"}})
        self.assertRefusesToStart(config=cfg, mentions=["coffer-mk-9"])

    def test_unreadable_database(self):
        bad_db = self.inst.dir / "garbage.db"
        bad_db.write_bytes(b"this is not an sqlite database\n" * 200)
        cfg = self.inst.write_config(self.inst.dir / "bad-db.toml", storage={"path": str(bad_db)})
        self.assertRefusesToStart(config=cfg)
        self.assertStartsAgain()

    def test_database_is_a_directory(self):
        cfg = self.inst.write_config(self.inst.dir / "dir-db.toml", storage={"path": str(self.inst.dir)})
        self.assertRefusesToStart(config=cfg)

    def test_bad_server_certificate(self):
        bad = self.inst.dir / "bad-server.crt"
        bad.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        cfg = self.inst.write_config(self.inst.dir / "bad-cert.toml", listener={"tls_cert_file": str(bad)})
        self.assertRefusesToStart(config=cfg, mentions=["cert"])

    def test_missing_server_certificate(self):
        cfg = self.inst.write_config(self.inst.dir / "no-cert.toml",
                                     listener={"tls_cert_file": str(self.inst.dir / "absent.crt")})
        self.assertRefusesToStart(config=cfg, mentions=["absent.crt"])

    def test_key_not_matching_certificate(self):
        cfg = self.inst.write_config(self.inst.dir / "mismatch.toml",
                                     listener={"tls_key_file": str(self.inst.pki.dir / "unit-web.key")})
        self.assertRefusesToStart(config=cfg)

    def test_missing_client_ca(self):
        cfg = self.inst.write_config(self.inst.dir / "no-ca.toml",
                                     listener={"client_ca_file": str(self.inst.dir / "absent-ca.pem")})
        self.assertRefusesToStart(config=cfg, mentions=["absent-ca.pem"])

    def test_malformed_config(self):
        cfg = self.inst.dir / "broken.toml"
        cfg.write_text("[listener\naddress = \n")
        self.assertRefusesToStart(config=cfg)


if __name__ == "__main__":
    unittest.main()
