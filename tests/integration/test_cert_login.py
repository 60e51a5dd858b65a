"""TLS-certificate auth (Vault's auth/cert, vault-api.md §1.5) and the seed's short form
POST /v1/auth; what the issued token may and may not do; expiry, revocation, certificate binding."""

import time
import unittest

from harness import CERT_LOGIN_FAILED, CofferTestCase, setup_web


class TestCertLogin(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst = cls.class_instance()
        setup_web(inst)
        # A second role for the unit-admin certificate (CN=admin) with a 2-second token, so that
        # unit-web (CN=web01) matches exactly one role and a login without a name is deterministic.
        inst.put_cert_role("short", allowed_common_names=["admin"], policies=["web"], ttl="2s")
        inst.write_secret("app/db", {"username": "app", "password": "pw-app-db"})
        inst.write_secret("app/cache", {"url": "redis://cache"})
        inst.write_secret("other/x", {"k": "outside the web policy"})

    def login_response(self, body, cert="unit-web", path="/v1/auth/cert/login"):
        return self.inst.request("POST", path, body, cert=cert)

    # -- the login itself ------------------------------------------------------------------------
    def check_web_login(self, resp):
        body = self.assertEnvelope(resp, 200)
        self.assertIsNone(body["data"])
        auth = body["auth"]
        self.assertAuthBlock(auth)
        self.assertIn("web", auth["policies"])
        self.assertIn("web", auth["token_policies"])
        self.assertEqual(auth["lease_duration"], 900)
        self.assertIs(auth["renewable"], True)
        self.assertIsInstance(auth["metadata"], dict)
        self.assertEqual(auth["metadata"].get("cert_name"), "web", auth["metadata"])
        self.assertEqual(auth["metadata"].get("common_name"), "web01", auth["metadata"])
        return auth

    def test_login_with_role_name(self):
        self.check_web_login(self.login_response({"name": "web"}))

    def test_login_without_role_name_tries_all_roles(self):
        self.check_web_login(self.login_response({}))

    def test_short_form_post_v1_auth(self):
        self.check_web_login(self.login_response({"role": "web"}, path="/v1/auth"))

    def test_each_login_gets_a_new_token_and_accessor(self):
        a = self.inst.login()
        b = self.inst.login()
        self.assertNotEqual(a["client_token"], b["client_token"])
        self.assertNotEqual(a["accessor"], b["accessor"])

    def test_no_matching_role_is_400_with_vaults_message(self):
        cases = [
            ("unit-other", "/v1/auth/cert/login", {"name": "web"}),   # CN=web02 not allowed by web
            ("unit-other", "/v1/auth/cert/login", {}),                # ... nor by any role
            ("unit-other", "/v1/auth", {"role": "web"}),
            ("unit-web", "/v1/auth/cert/login", {"name": "short"}),   # role exists, CN not allowed
            ("unit-web", "/v1/auth/cert/login", {"name": "no-such-role"}),
            ("unit-web", "/v1/auth", {"role": "no-such-role"}),
        ]
        for cert, path, body in cases:
            with self.subTest(cert=cert, path=path, body=body):
                r = self.login_response(body, cert=cert, path=path)
                self.assertJSONError(r, 400)
                self.assertEqual(r.json, {"errors": [CERT_LOGIN_FAILED]})

    # -- what the token may do -------------------------------------------------------------------
    def test_token_reads_and_lists_inside_its_policy(self):
        token = self.inst.login()["client_token"]
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token)
        body = self.assertEnvelope(r, 200)
        self.assertEqual(body["data"], {"username": "app", "password": "pw-app-db"})
        # The list path is sanitised to the prefix "secret/app/" before the ACL check (Vault; hvac
        # lists without the trailing slash), so all three forms are covered by "secret/app/*".
        for method, path in (("LIST", "/v1/secret/app/"), ("LIST", "/v1/secret/app"),
                             ("GET", "/v1/secret/app?list=true")):
            with self.subTest(method=method, path=path):
                r = self.inst.request(method, path, cert="unit-web", token=token)
                body = self.assertEnvelope(r, 200)
                self.assertEqual(sorted(body["data"]["keys"]), ["cache", "db"])

    def test_token_refused_outside_its_policy(self):
        token = self.inst.login()["client_token"]
        for method, path, data in [
            ("GET", "/v1/secret/other/x", None),
            ("LIST", "/v1/secret/other/", None),
            ("GET", "/v1/secret/app", None),                    # "secret/app/*" does not cover secret/app
            ("PUT", "/v1/secret/app/db", {"password": "overwritten"}),   # read/list only
            ("POST", "/v1/secret/app/new", {"k": "v"}),
            ("DELETE", "/v1/secret/app/db", None),
            ("PUT", "/v1/sys/policies/acl/web", {"policy": 'path "*" { capabilities = ["sudo"] }'}),
            ("POST", "/v1/auth/cert/certs/evil", {"certificate": self.pki.pem(), "token_policies": ["root"]}),
            ("POST", "/v1/auth/token/create", {"policies": ["web"]}),
        ]:
            with self.subTest(method=method, path=path):
                r = self.inst.request(method, path, data, cert="unit-web", token=token)
                self.assertPermissionDenied(r)
        # Nothing changed.
        r = self.inst.root("GET", "/v1/secret/app/db")
        self.assertEqual(self.assertEnvelope(r)["data"], {"username": "app", "password": "pw-app-db"})
        self.assertNotFoundEmpty(self.inst.root("GET", "/v1/secret/app/new"))

    def test_kv_preflight_authorised_by_rights_on_the_target_path(self):
        token = self.inst.login()["client_token"]
        r = self.inst.request("GET", "/v1/sys/internal/ui/mounts/secret/app/db", cert="unit-web", token=token)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["data"]["options"]["version"], "1")

    def test_missing_and_bogus_tokens_refused(self):
        for token in (None, "", "hvs.bogus", "hvs." + "A" * 24, "s.legacybogus", "not-a-token"):
            with self.subTest(token=token):
                r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token)
                self.assertEqual(r.status, 403, repr(r))
                self.assertJSONError(r, 403)
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token="hvs.bogus")
        self.assertPermissionDenied(r)

    def test_bearer_header_accepted(self):
        token = self.inst.login()["client_token"]
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", bearer=token)
        self.assertEnvelope(r, 200)

    def test_x_vault_token_takes_precedence_over_bearer(self):
        token = self.inst.login()["client_token"]
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token, bearer="hvs.bogus")
        self.assertEnvelope(r, 200)
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token="hvs.bogus", bearer=token)
        self.assertPermissionDenied(r)

    def test_other_authorization_schemes_ignored(self):
        token = self.inst.login()["client_token"]
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web",
                              headers={"Authorization": f"Basic {token}"})
        self.assertPermissionDenied(r)

    # -- expiry, revocation, binding -------------------------------------------------------------
    def test_expired_token_refused(self):
        t0 = time.monotonic()
        auth = self.inst.login(cert="unit-admin", role="short")
        self.assertEqual(auth["lease_duration"], 2)
        token = auth["client_token"]
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-admin", token=token)
        if time.monotonic() - t0 < 1.5:  # only meaningful while the token is surely alive
            self.assertEnvelope(r, 200)
        time.sleep(max(0.0, 3.5 - (time.monotonic() - t0)))
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/app/db", cert="unit-admin", token=token))
        self.assertPermissionDenied(self.inst.request("GET", "/v1/auth/token/lookup-self", cert="unit-admin",
                                                      token=token))
        self.assertPermissionDenied(self.inst.request("POST", "/v1/auth/token/renew-self", {}, cert="unit-admin",
                                                      token=token))

    def test_revoked_token_refused(self):
        token = self.inst.login()["client_token"]
        self.assertNoContent(self.inst.request("POST", "/v1/auth/token/revoke-self", cert="unit-web", token=token))
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token))
        self.assertPermissionDenied(self.inst.request("GET", "/v1/auth/token/lookup-self", cert="unit-web",
                                                      token=token))

    def test_token_bound_to_its_client_certificate(self):
        token = self.inst.login()["client_token"]
        for cert in ("unit-admin", "unit-other"):
            with self.subTest(cert=cert):
                for method, path, data in [("GET", "/v1/secret/app/db", None),
                                           ("GET", "/v1/auth/token/lookup-self", None),
                                           ("POST", "/v1/auth/token/renew-self", {})]:
                    r = self.inst.request(method, path, data, cert=cert, token=token)
                    self.assertPermissionDenied(r)
        # Still fine over the certificate it was issued to.
        self.assertEnvelope(self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token))

    def test_revoke_over_another_certificate_refused(self):
        token = self.inst.login()["client_token"]
        r = self.inst.request("POST", "/v1/auth/token/revoke-self", cert="unit-admin", token=token)
        self.assertPermissionDenied(r)
        self.assertEnvelope(self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token))


if __name__ == "__main__":
    unittest.main()
