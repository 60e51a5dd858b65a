"""Token lifecycle (vault-api.md §1.7): lookup-self, renew-self, revoke-self, token/create with
child policies that must be a subset of the parent's, children revoked with their parent."""

import unittest

from harness import CofferTestCase, setup_web

LOOKUP_FIELDS = ("accessor", "creation_time", "creation_ttl", "display_name", "expire_time",
                 "explicit_max_ttl", "id", "issue_time", "meta", "num_uses", "orphan", "path",
                 "policies", "renewable", "ttl", "type")


class TestTokenLifecycle(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst = cls.class_instance()
        setup_web(inst)
        inst.put_policy("creator", 'path "auth/token/create" { capabilities = ["create", "update"] }')
        inst.put_policy("admin", 'path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }')
        inst.write_secret("app/db", {"password": "pw"})
        inst.write_secret("admin/only", {"k": "v"})

    def lookup(self, token, cert="unit-web"):
        return self.inst.request("GET", "/v1/auth/token/lookup-self", cert=cert, token=token)

    def create(self, parent, body, cert="unit-admin"):
        return self.inst.request("POST", "/v1/auth/token/create", body, cert=cert, token=parent)

    # -- lookup-self -------------------------------------------------------------------------------
    def test_lookup_self_of_a_login_token(self):
        auth = self.inst.login()
        body = self.assertEnvelope(self.lookup(auth["client_token"]), 200)
        data = body["data"]
        for field in LOOKUP_FIELDS:
            self.assertIn(field, data, f"lookup-self lacks {field!r}: {data}")
        self.assertEqual(data["id"], auth["client_token"])
        self.assertEqual(data["accessor"], auth["accessor"])
        self.assertIn("web", data["policies"])
        self.assertEqual(data["creation_ttl"], 900)
        self.assertIsInstance(data["ttl"], int)
        self.assertTrue(880 <= data["ttl"] <= 900, data["ttl"])
        self.assertIsInstance(data["creation_time"], int)
        self.assertIsInstance(data["expire_time"], str)
        self.assertIs(data["renewable"], True)
        self.assertIs(data["orphan"], True)             # login tokens are orphans
        self.assertEqual(data["type"], "service")
        self.assertEqual(data["path"], "auth/cert/login")
        self.assertEqual(data["num_uses"], 0)

    def test_lookup_self_of_the_root_token(self):
        body = self.assertEnvelope(self.inst.root("GET", "/v1/auth/token/lookup-self"), 200)
        data = body["data"]
        self.assertEqual(data["policies"], ["root"])
        self.assertEqual(data["ttl"], 0)
        self.assertIsNone(data["expire_time"])
        self.assertEqual(data["id"], self.inst.root_token)

    def test_lookup_self_with_bearer(self):
        auth = self.inst.login()
        r = self.inst.request("GET", "/v1/auth/token/lookup-self", cert="unit-web", bearer=auth["client_token"])
        self.assertEqual(self.assertEnvelope(r)["data"]["accessor"], auth["accessor"])

    # -- renew-self --------------------------------------------------------------------------------
    def test_renew_self(self):
        auth = self.inst.login()
        token = auth["client_token"]
        r = self.inst.request("POST", "/v1/auth/token/renew-self", {}, cert="unit-web", token=token)
        body = self.assertEnvelope(r, 200)
        self.assertAuthBlock(body["auth"])
        self.assertEqual(body["auth"]["client_token"], token)      # unchanged
        self.assertEqual(body["auth"]["accessor"], auth["accessor"])
        self.assertTrue(890 <= body["auth"]["lease_duration"] <= 900, body["auth"])
        self.assertIs(body["auth"]["renewable"], True)

    def test_renew_self_with_increment(self):
        token = self.inst.login()["client_token"]
        r = self.inst.request("POST", "/v1/auth/token/renew-self", {"increment": "60s"}, cert="unit-web", token=token)
        body = self.assertEnvelope(r, 200)
        self.assertTrue(0 < body["auth"]["lease_duration"] <= 60, body["auth"])
        ttl = self.assertEnvelope(self.lookup(token))["data"]["ttl"]
        self.assertTrue(0 < ttl <= 60, ttl)

    def test_renew_self_capped_by_max_ttl(self):
        token = self.inst.login()["client_token"]
        r = self.inst.request("POST", "/v1/auth/token/renew-self", {"increment": "48h"}, cert="unit-web", token=token)
        body = self.assertEnvelope(r, 200)
        self.assertTrue(0 < body["auth"]["lease_duration"] <= 24 * 3600, body["auth"])  # [tokens] max_ttl

    def test_renew_self_without_body(self):
        # hvac and curl -X POST may send no body at all.
        token = self.inst.login()["client_token"]
        r = self.inst.request("POST", "/v1/auth/token/renew-self", cert="unit-web", token=token)
        self.assertEqual(self.assertEnvelope(r, 200)["auth"]["client_token"], token)

    # -- revoke-self -------------------------------------------------------------------------------
    def test_revoke_self(self):
        token = self.inst.login()["client_token"]
        self.assertEnvelope(self.lookup(token))
        r = self.inst.request("POST", "/v1/auth/token/revoke-self", cert="unit-web", token=token)
        self.assertNoContent(r)
        self.assertPermissionDenied(self.lookup(token))
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token))
        # A second revoke with the dead token is refused like any bad token.
        r = self.inst.request("POST", "/v1/auth/token/revoke-self", cert="unit-web", token=token)
        self.assertPermissionDenied(r)

    def test_revoking_one_login_leaves_others(self):
        a = self.inst.login()["client_token"]
        b = self.inst.login()["client_token"]
        self.assertNoContent(self.inst.request("POST", "/v1/auth/token/revoke-self", cert="unit-web", token=a))
        self.assertEnvelope(self.lookup(b))

    # -- by accessor ---------------------------------------------------------------------------------
    def test_lookup_and_revoke_by_accessor(self):
        parent = self.assertEnvelope(self.create(self.inst.root_token, {"policies": ["creator", "web"], "ttl": "10m"}))["auth"]
        child = self.assertEnvelope(self.create(parent["client_token"], {"policies": ["web"]}))["auth"]
        by_accessor = lambda op, accessor, token=None: self.inst.request(
            "POST", f"/v1/auth/token/{op}-accessor", {"accessor": accessor}, cert="unit-admin",
            token=token or self.inst.root_token)

        data = self.assertEnvelope(by_accessor("lookup", parent["accessor"]))["data"]
        self.assertEqual(data["accessor"], parent["accessor"])
        self.assertEqual(data["id"], "", "the token itself is never shown by accessor")
        self.assertEqual(sorted(data["policies"]), ["creator", "default", "web"])
        # Not for ordinary tokens (the default policy grants neither).
        self.assertPermissionDenied(by_accessor("lookup", parent["accessor"], token=parent["client_token"]))
        self.assertPermissionDenied(by_accessor("revoke", child["accessor"], token=parent["client_token"]))

        self.assertNoContent(by_accessor("revoke", parent["accessor"]))
        for token in (parent["client_token"], child["client_token"]):  # the child goes with it
            self.assertPermissionDenied(self.lookup(token, cert="unit-admin"))
        self.assertEqual(self.assertJSONError(by_accessor("lookup", parent["accessor"]), 400), ["invalid accessor"])
        self.assertEqual(self.assertJSONError(by_accessor("revoke", "no-such-accessor"), 400), ["invalid accessor"])
        r = self.inst.request("POST", "/v1/auth/token/lookup-accessor", {}, cert="unit-admin", token=self.inst.root_token)
        self.assertEqual(self.assertJSONError(r, 400), ["missing accessor"])

    # -- token/create --------------------------------------------------------------------------------
    def test_root_creates_token(self):
        r = self.create(self.inst.root_token, {"policies": ["web"], "ttl": "10m"})
        body = self.assertEnvelope(r, 200)
        auth = body["auth"]
        self.assertAuthBlock(auth)
        self.assertIn("web", auth["policies"])
        self.assertEqual(auth["lease_duration"], 600)
        if "orphan" in auth:
            self.assertIs(auth["orphan"], False)
        child = auth["client_token"]
        r = self.inst.request("GET", "/v1/secret/app/db", cert="unit-admin", token=child)
        self.assertEqual(self.assertEnvelope(r)["data"], {"password": "pw"})
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/admin/only", cert="unit-admin", token=child))
        data = self.assertEnvelope(self.lookup(child, cert="unit-admin"))["data"]
        self.assertEqual(data["path"], "auth/token/create")
        self.assertIn("web", data["policies"])
        self.assertNotIn("root", data["policies"])

    def parent_token(self):
        r = self.create(self.inst.root_token, {"policies": ["creator", "web"], "ttl": "1h"})
        return self.assertEnvelope(r)["auth"]["client_token"]

    def test_child_with_subset_policies(self):
        parent = self.parent_token()
        r = self.create(parent, {"policies": ["web"], "ttl": "5m"})
        auth = self.assertEnvelope(r, 200)["auth"]
        self.assertAuthBlock(auth)
        self.assertIn("web", auth["policies"])
        self.assertNotIn("creator", auth["policies"])
        self.assertLessEqual(auth["lease_duration"], 300)
        child = auth["client_token"]
        self.assertEnvelope(self.inst.request("GET", "/v1/secret/app/db", cert="unit-admin", token=child))
        # The child cannot mint tokens: it lacks "creator".
        self.assertPermissionDenied(self.create(child, {"policies": ["web"]}))

    def test_child_with_superset_policies_refused(self):
        parent = self.parent_token()
        for policies in (["web", "admin"], ["admin"], ["root"]):
            with self.subTest(policies=policies):
                r = self.create(parent, {"policies": policies})
                errors = self.assertJSONError(r)
                self.assertIn(r.status, (400, 403), repr(r))
                self.assertTrue(errors, repr(r))
        # And nothing with admin rights came out of it: the parent still cannot read admin/only.
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/admin/only", cert="unit-admin", token=parent))

    def test_children_die_with_their_parent(self):
        parent = self.parent_token()
        child = self.assertEnvelope(self.create(parent, {"policies": ["web"]}))["auth"]["client_token"]
        self.assertEnvelope(self.lookup(child, cert="unit-admin"))
        self.assertNoContent(self.inst.request("POST", "/v1/auth/token/revoke-self", cert="unit-admin", token=parent))
        self.assertPermissionDenied(self.lookup(child, cert="unit-admin"))
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/app/db", cert="unit-admin", token=child))

    def test_login_token_cannot_create_tokens_without_policy(self):
        token = self.inst.login()["client_token"]
        self.assertPermissionDenied(self.create(token, {"policies": ["web"]}, cert="unit-web"))


if __name__ == "__main__":
    unittest.main()
