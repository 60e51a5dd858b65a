"""The HTTP surface: sys/health (vault-api.md §1.10) and the security headers that every
response carries, success or error (brief §3)."""

import unittest

from harness import CofferTestCase, setup_web


class TestHealth(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst = cls.class_instance()

    def test_health_get_is_bare_json(self):
        r = self.inst.request("GET", "/v1/sys/health", cert="unit-web")
        self.assertStatus(r, 200)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0], "application/json")
        body = r.json
        self.assertIsInstance(body, dict)
        self.assertIs(body.get("initialized"), True)
        self.assertIs(body.get("sealed"), False)
        self.assertIs(body.get("standby"), False)
        self.assertIsInstance(body.get("version"), str)
        self.assertIsInstance(body.get("server_time_utc"), int)
        self.assertNotIn("data", body)  # not the logical envelope

    def test_health_needs_no_token(self):
        r = self.inst.request("GET", "/v1/sys/health", cert="unit-other", token="hvs.bogus")
        self.assertStatus(r, 200)

    def test_health_head_has_no_body(self):
        r = self.inst.request("HEAD", "/v1/sys/health", cert="unit-web")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"")

    def test_health_code_overrides(self):
        r = self.inst.request("GET", "/v1/sys/health?activecode=299", cert="unit-web")
        self.assertStatus(r, 299)
        # What the official Go client always sends (typo included): unknown parameters ignored.
        q = ("standbycode=299&drsecondarycode=299&haunhealhty=299&performancestandbycode=299"
             "&removedcode=299&sealedcode=299&uninitcode=299")
        r = self.inst.request("GET", f"/v1/sys/health?{q}", cert="unit-web")
        self.assertStatus(r, 200)


class TestSecurityHeaders(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst = cls.class_instance()
        setup_web(inst)
        inst.write_secret("app/db", {"password": "pw"})

    def test_headers_on_every_kind_of_response(self):
        token = self.inst.login()["client_token"]
        root = self.inst.root_token
        cases = [
            ("200 health", 200, dict(method="GET", path="/v1/sys/health")),
            ("200 HEAD health", 200, dict(method="HEAD", path="/v1/sys/health")),
            ("200 read", 200, dict(method="GET", path="/v1/secret/app/db", token=root)),
            ("200 list", 200, dict(method="LIST", path="/v1/secret/app/", token=root)),
            ("200 login", 200, dict(method="POST", path="/v1/auth/cert/login", data={"name": "web"}, cert="unit-web")),
            ("200 lookup-self", 200, dict(method="GET", path="/v1/auth/token/lookup-self", token=root)),
            ("204 write", 204, dict(method="PUT", path="/v1/secret/hdr/x", data={"a": "b"}, token=root)),
            ("204 delete", 204, dict(method="DELETE", path="/v1/secret/hdr/x", token=root)),
            ("400 bad JSON", 400, dict(method="PUT", path="/v1/secret/hdr/x", raw=b"{nope", token=root)),
            ("400 login refused", 400, dict(method="POST", path="/v1/auth/cert/login", data={}, cert="unit-other")),
            ("403 no token", 403, dict(method="GET", path="/v1/secret/app/db")),
            ("403 bad token", 403, dict(method="GET", path="/v1/secret/app/db", token="hvs.bogus")),
            ("403 outside policy", 403, dict(method="GET", path="/v1/secret/other", token=token, cert="unit-web")),
            ("404 missing", 404, dict(method="GET", path="/v1/secret/hdr/missing", token=root)),
            ("404 unknown route", 404, dict(method="GET", path="/v1/nonexistent/route", token=root)),
            ("405 method", 405, dict(method="FROB", path="/v1/secret/app/db", token=root)),
        ]
        for name, status, kw in cases:
            with self.subTest(name):
                kw.setdefault("cert", "unit-admin")
                method, path = kw.pop("method"), kw.pop("path")
                r = self.inst.request(method, path, kw.pop("data", None), **kw)
                self.assertStatus(r, status)
                self.assertSecurityHeaders(r)
                if r.body:
                    self.assertEqual((r.header("Content-Type") or "").split(";")[0].strip(), "application/json",
                                     repr(r))
        with self.subTest("413 too large"):
            # Declared length only: sending the whole body races with the server's early close.
            r = self.inst.request_declaring_body("PUT", "/v1/secret/hdr/big", self.inst.max_request_bytes + 1,
                                                 token=root)
            self.assertStatus(r, 413)
            self.assertSecurityHeaders(r)
            self.assertEqual((r.header("Content-Type") or "").split(";")[0].strip(), "application/json", repr(r))


if __name__ == "__main__":
    unittest.main()
