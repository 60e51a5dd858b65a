"""sqlite is untrusted storage behind an AEAD barrier (brief §1-2): no plaintext secret or token
on disk or in the log; a flipped ciphertext byte or two swapped rows fail the read (500, generic
message) without taking other secrets down."""

import contextlib
import secrets
import unittest

from harness import CofferTestCase, setup_web

LEAKY_WORDS = ("sqlite", "SQLITE", "EVP_", "CKR_", "openssl", "OpenSSL", "GCM", "tag mismatch")


def needles(value: str) -> dict:
    """The byte patterns under which a plaintext value could sit in a file."""
    raw = value.encode()
    return {"utf-8": raw, "utf-16-le": value.encode("utf-16-le"), "hex": raw.hex().encode()}


class TestStorageSecurity(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst = cls.class_instance()
        setup_web(inst)

    def check_no_plaintext(self, where: str, values: dict):
        files = self.inst.storage_files()
        self.assertIn(self.inst.db_path.name, files, f"no sqlite file at {self.inst.db_path}")
        for fname, content in files.items():
            for label, value in values.items():
                for form, needle in needles(value).items():
                    self.assertNotIn(needle, content, f"{where}: {label} found ({form}) in {fname}")

    def test_schema_as_the_contract_says(self):
        with contextlib.closing(self.inst.db()) as db:
            cols = [row[1] for row in db.execute("PRAGMA table_info(secrets)")]
        for col in ("mount", "path", "dek_version", "sealed", "updated_at"):
            self.assertIn(col, cols)

    def test_no_plaintext_secrets_or_tokens_on_disk_or_in_the_log(self):
        marker = "plaintext-marker-" + secrets.token_hex(16)
        key_marker = "key-marker-" + secrets.token_hex(8)
        self.inst.write_secret("app/db", {"password": marker, key_marker: "v"})
        self.inst.write_secret("leak/other", {"api_key": marker + "-2"})
        auth = self.inst.login()
        token = auth["client_token"]
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token)
        self.assertEqual(self.assertEnvelope(r)["data"]["password"], marker)
        child = self.assertEnvelope(self.inst.root("POST", "/v1/auth/token/create", {"policies": ["web"]}))
        child_token = child["auth"]["client_token"]
        values = {
            "secret value": marker,
            "second secret value": marker + "-2",
            "secret key name": key_marker,
            "root token": self.inst.root_token,
            "root token body": self.inst.root_token.split(".", 1)[-1],
            "login token": token,
            "login token body": token.split(".", 1)[-1],
            "created token": child_token,
            "PKCS#11 PIN": self.inst.pin,
        }
        self.check_no_plaintext("while running", values)
        log = self.inst.log_text()
        for label, value in values.items():
            self.assertNotIn(value, log, f"{label} appears in cofferd's log")
        # After a clean stop (WAL checkpointed) and again after a restart.
        self.assertEqual(self.inst.stop(), 0)
        self.check_no_plaintext("after SIGTERM", values)
        self.inst.start()
        self.assertEqual(self.assertEnvelope(self.inst.root("GET", "/v1/secret/app/db"))["data"]["password"], marker)
        self.check_no_plaintext("after restart", values)
        log = self.inst.log_text()
        for label, value in values.items():
            self.assertNotIn(value, log, f"{label} appears in cofferd's log")

    def assertIntegrityFailure(self, path):
        r = self.inst.root("GET", f"/v1/secret/{path}")
        errors = self.assertJSONError(r, 500)
        self.assertTrue(errors, repr(r))
        text = " ".join(errors)
        for word in LEAKY_WORDS:
            self.assertNotIn(word, text, f"500 message leaks internals: {r!r}")
        return r

    def test_flipped_ciphertext_byte_fails_only_that_read(self):
        self.inst.write_secret("tamper/ok", {"v": "untouched"})
        for name in ("first", "middle", "last"):
            self.inst.write_secret(f"tamper/{name}", {"v": f"value-{name}"})
        self.inst.stop()
        lengths = {name: len(self.inst.sealed(f"tamper/{name}")) for name in ("first", "middle", "last")}
        for name, n in lengths.items():
            self.assertGreater(n, 28, "sealed blob too short to hold a nonce and a tag")
        self.inst.flip_sealed_byte("tamper/first", 0)
        self.inst.flip_sealed_byte("tamper/middle", lengths["middle"] // 2)
        self.inst.flip_sealed_byte("tamper/last", lengths["last"] - 1)
        self.inst.start()
        for name in ("first", "middle", "last"):
            with self.subTest(flipped=name):
                self.assertIntegrityFailure(f"tamper/{name}")
        self.assertEqual(self.assertEnvelope(self.inst.root("GET", "/v1/secret/tamper/ok"))["data"],
                         {"v": "untouched"})
        # The daemon keeps serving; the list still works; delete + write heals the path (a write over
        # the damaged record may fail: its create/update existence check reads it, as Vault's does).
        self.assertTrue(self.inst.running)
        self.assertIn("ok", self.assertEnvelope(self.inst.root("LIST", "/v1/secret/tamper/"))["data"]["keys"])
        self.assertNoContent(self.inst.root("DELETE", "/v1/secret/tamper/middle"))
        self.inst.write_secret("tamper/middle", {"v": "rewritten"})
        self.assertEqual(self.assertEnvelope(self.inst.root("GET", "/v1/secret/tamper/middle"))["data"],
                         {"v": "rewritten"})

    def test_swapped_rows_both_fail(self):
        self.inst.write_secret("swap/a", {"v": "value-a"})
        self.inst.write_secret("swap/b", {"v": "value-b"})
        self.inst.write_secret("swap/ok", {"v": "untouched"})
        self.inst.stop()
        self.inst.swap_sealed("swap/a", "swap/b")
        self.inst.start()
        self.assertIntegrityFailure("swap/a")
        self.assertIntegrityFailure("swap/b")
        self.assertEqual(self.assertEnvelope(self.inst.root("GET", "/v1/secret/swap/ok"))["data"], {"v": "untouched"})
        # Swapping back restores both: the failure was the binding of ciphertext to its path.
        self.inst.stop()
        self.inst.swap_sealed("swap/a", "swap/b")
        self.inst.start()
        self.assertEqual(self.assertEnvelope(self.inst.root("GET", "/v1/secret/swap/a"))["data"], {"v": "value-a"})
        self.assertEqual(self.assertEnvelope(self.inst.root("GET", "/v1/secret/swap/b"))["data"], {"v": "value-b"})

    def test_ciphertext_copied_to_another_path_fails(self):
        self.inst.write_secret("copy/src", {"v": "value-src"})
        self.inst.write_secret("copy/dst", {"v": "value-dst"})
        self.inst.stop()
        self.inst.set_sealed("copy/dst", self.inst.sealed("copy/src"))
        self.inst.start()
        self.assertIntegrityFailure("copy/dst")
        self.assertEqual(self.assertEnvelope(self.inst.root("GET", "/v1/secret/copy/src"))["data"], {"v": "value-src"})

    def test_truncated_ciphertext_fails(self):
        self.inst.write_secret("trunc/x", {"v": "value-x"})
        self.inst.stop()
        blob = self.inst.sealed("trunc/x")
        self.inst.set_sealed("trunc/x", blob[:-1])
        self.inst.start()
        self.assertIntegrityFailure("trunc/x")
        self.inst.stop()
        self.inst.set_sealed("trunc/x", b"")
        self.inst.start()
        self.assertIntegrityFailure("trunc/x")


if __name__ == "__main__":
    unittest.main()
