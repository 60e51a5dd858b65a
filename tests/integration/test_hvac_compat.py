"""A real Vault client, unchanged, against cofferd: Debian's python3-hvac 0.11.2 (run with
/usr/bin/python3). Quirks (platform-notes.md): the client certificate goes on the Client as
cert=(crt, key) and the CA as verify=<path>; KV v1 is client.secrets.kv.v1; health defaults to HEAD;
error bodies are parsed only with Content-Type exactly application/json."""

import os
import unittest

# hvac reads VAULT_* at import time (and joins VAULT_CLIENT_CERT/KEY into a bogus cert string):
# a developer who sourced .dev/env must not change what this test does.
for _k in [k for k in os.environ if k.startswith("VAULT_")]:
    del os.environ[_k]
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

try:
    import hvac
    import hvac.exceptions
except ImportError as exc:  # pragma: no cover
    raise ImportError(f"python3-hvac is needed (Debian's /usr/bin/python3; bash scripts/install-deps.sh): {exc}")

from harness import CofferTestCase, setup_web


class TestHvacCompat(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst = cls.class_instance()
        setup_web(inst)
        # Units write their own secrets in this test: give web a wider policy on its own subtree.
        inst.put_policy("web", 'path "secret/app/*" { capabilities = ["create", "read", "update", "delete", "list"] }')
        inst.write_secret("app/db", {"username": "app", "password": "hvac-pw"})

    def client(self, cert="unit-web", token=None):
        crt, key = self.pki.cert(cert)
        c = hvac.Client(url=f"https://127.0.0.1:{self.inst.port}", cert=(crt, key), verify=self.pki.ca,
                        token=token, timeout=15)
        self.addCleanup(c.adapter.close)
        return c

    def test_unit_workflow(self):
        c = self.client()
        self.assertFalse(c.is_authenticated())

        health = c.sys.read_health_status(method="GET")
        self.assertIsInstance(health, dict, health)
        self.assertIs(health["initialized"], True)
        self.assertIs(health["sealed"], False)
        head = c.sys.read_health_status()  # HEAD, hvac's default
        self.assertEqual(head.status_code, 200)

        login = c.auth.cert.login(name="web")
        token = login["auth"]["client_token"]
        self.assertTrue(token.startswith("hvs."))
        self.assertEqual(c.token, token)
        self.assertTrue(c.is_authenticated())

        kv = c.secrets.kv.v1
        secret = kv.read_secret(path="app/db", mount_point="secret")
        self.assertEqual(secret["data"], {"username": "app", "password": "hvac-pw"})
        self.assertEqual(secret["lease_duration"], 2764800)

        kv.create_or_update_secret(path="app/new", secret={"a": "1"}, mount_point="secret")   # GET 404 -> POST
        kv.create_or_update_secret(path="app/new", secret={"b": "2"}, mount_point="secret")   # GET 200 -> PUT
        self.assertEqual(kv.read_secret(path="app/new", mount_point="secret")["data"], {"b": "2"})
        listing = kv.list_secrets(path="app", mount_point="secret")
        self.assertEqual(sorted(listing["data"]["keys"]), ["db", "new"])
        resp = kv.delete_secret(path="app/new", mount_point="secret")
        self.assertEqual(resp.status_code, 204)
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret(path="app/new", mount_point="secret")

        me = c.auth.token.lookup_self()
        self.assertEqual(me["data"]["id"], token)
        self.assertIn("web", me["data"]["policies"])
        renewed = c.auth.token.renew_self()
        self.assertEqual(renewed["auth"]["client_token"], token)
        renewed = c.auth.token.renew_self(increment="10m")
        self.assertLessEqual(renewed["auth"]["lease_duration"], 600)

        resp = c.auth.token.revoke_self()
        self.assertEqual(resp.status_code, 204)
        self.assertFalse(c.is_authenticated())

    def test_login_without_role_name(self):
        c = self.client()
        c.auth.cert.login()
        self.assertTrue(c.is_authenticated())

    def test_errors_map_to_hvac_exceptions(self):
        c = self.client()
        c.auth.cert.login(name="web")
        kv = c.secrets.kv.v1
        with self.assertRaises(hvac.exceptions.Forbidden) as cm:
            kv.read_secret(path="other/x", mount_point="secret")
        self.assertTrue(any("permission denied" in e for e in cm.exception.errors or []),
                        f"hvac saw no 'permission denied' (Content-Type must be exactly application/json): "
                        f"{cm.exception.errors!r}")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret(path="app/missing", mount_point="secret")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.list_secrets(path="app/empty-folder", mount_point="secret")

    def test_refused_login_raises_invalid_request(self):
        c = self.client(cert="unit-other")
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            c.auth.cert.login(name="web")
        self.assertIn("invalid certificate or no client certificate supplied", cm.exception.errors or [])
        self.assertFalse(c.is_authenticated())

    def test_bad_token_is_not_authenticated(self):
        self.assertFalse(self.client(token="hvs.bogus").is_authenticated())

    def test_token_bound_to_certificate_under_hvac(self):
        c = self.client()
        token = c.auth.cert.login(name="web")["auth"]["client_token"]
        other = self.client(cert="unit-admin", token=token)
        self.assertFalse(other.is_authenticated())
        with self.assertRaises(hvac.exceptions.Forbidden):
            other.secrets.kv.v1.read_secret(path="app/db", mount_point="secret")

    def test_root_token_through_hvac(self):
        c = self.client(cert="unit-admin", token=self.inst.root_token)
        self.assertTrue(c.is_authenticated())
        self.assertEqual(c.auth.token.lookup_self()["data"]["policies"], ["root"])
        c.secrets.kv.v1.create_or_update_secret(path="ops/x", secret={"k": "v"}, mount_point="secret")
        self.assertEqual(c.secrets.kv.v1.read_secret(path="ops/x", mount_point="secret")["data"], {"k": "v"})


if __name__ == "__main__":
    unittest.main()
