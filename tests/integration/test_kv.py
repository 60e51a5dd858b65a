"""KV v1 under /v1/secret (vault-api.md §1.8): write/read/list/delete shapes, LIST and
GET ?list=true, folders, Vault's 404 {"errors":[]}, the advisory ttl, replace-not-merge."""

import unittest

from harness import KV_DEFAULT_LEASE, CofferTestCase


class TestKV(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst = cls.class_instance()

    def read(self, path):
        return self.inst.root("GET", f"/v1/secret/{path}")

    def read_data(self, path):
        body = self.assertEnvelope(self.read(path), 200)
        return body["data"]

    def keys(self, resp):
        body = self.assertEnvelope(resp, 200)
        keys = body["data"]["keys"]
        self.assertIsInstance(keys, list)
        self.assertEqual(len(keys), len(set(keys)), f"duplicate keys: {keys}")
        return sorted(keys)

    def test_write_then_read_shape(self):
        r = self.inst.root("PUT", "/v1/secret/shape/db", {"username": "app", "password": "s3cr3t"})
        self.assertNoContent(r)
        body = self.assertEnvelope(self.read("shape/db"), 200)
        self.assertEqual(body["data"], {"username": "app", "password": "s3cr3t"})
        self.assertEqual(body["lease_duration"], KV_DEFAULT_LEASE)
        self.assertEqual(body["lease_id"], "")
        self.assertIs(body["renewable"], False)
        self.assertIsNone(body["auth"])

    def test_post_and_put_are_synonyms(self):
        self.assertNoContent(self.inst.root("POST", "/v1/secret/syn/a", {"v": "post"}))
        self.assertEqual(self.read_data("syn/a"), {"v": "post"})
        self.assertNoContent(self.inst.root("PUT", "/v1/secret/syn/a", {"v": "put"}))
        self.assertEqual(self.read_data("syn/a"), {"v": "put"})

    def test_write_replaces_does_not_merge(self):
        self.inst.write_secret("merge/x", {"a": "1", "b": "2"})
        self.inst.write_secret("merge/x", {"c": "3"})
        self.assertEqual(self.read_data("merge/x"), {"c": "3"})

    def test_values_round_trip(self):
        value = {"unicode": "pässwörd ✓ 密码", "quote": "a\"b\\c", "newline": "l1\nl2", "empty": "",
                 "number": 5432, "bool": True, "list": ["a", "b"], "nested": {"k": "v"}}
        self.inst.write_secret("types/all", value)
        self.assertEqual(self.read_data("types/all"), value)

    def test_ttl_key_sets_lease_duration(self):
        for ttl, seconds in (("1h", 3600), ("30m", 1800), ("90s", 90)):
            with self.subTest(ttl=ttl):
                self.inst.write_secret("ttl/x", {"foo": "bar", "ttl": ttl})
                body = self.assertEnvelope(self.read("ttl/x"), 200)
                self.assertEqual(body["data"], {"foo": "bar", "ttl": ttl})  # kept in the data
                self.assertEqual(body["lease_duration"], seconds)
                self.assertEqual(body["lease_id"], "")                       # advisory: no lease
                self.assertIs(body["renewable"], False)

    def test_missing_secret_is_404_empty_errors(self):
        self.assertNotFoundEmpty(self.read("does/not/exist"))

    def test_delete(self):
        self.inst.write_secret("del/x", {"a": "b"})
        self.assertNoContent(self.inst.root("DELETE", "/v1/secret/del/x"))
        self.assertNotFoundEmpty(self.read("del/x"))
        # Deleting what is absent is also 204.
        self.assertNoContent(self.inst.root("DELETE", "/v1/secret/del/x"))
        self.assertNoContent(self.inst.root("DELETE", "/v1/secret/del/never-existed"))

    def test_list_nested_folders(self):
        for p in ("tree/a", "tree/b/c", "tree/b/d/e", "tree/b/d/f", "tree/z"):
            self.inst.write_secret(p, {"p": p})
        self.assertEqual(self.keys(self.inst.root("LIST", "/v1/secret/tree/")), ["a", "b/", "z"])
        self.assertEqual(self.keys(self.inst.root("LIST", "/v1/secret/tree/b/")), ["c", "d/"])
        self.assertEqual(self.keys(self.inst.root("LIST", "/v1/secret/tree/b/d/")), ["e", "f"])
        # A folder is not a secret.
        self.assertNotFoundEmpty(self.read("tree/b"))

    def test_list_forms_are_equivalent(self):
        for p in ("forms/one", "forms/sub/two"):
            self.inst.write_secret(p, {"p": p})
        expected = ["one", "sub/"]
        for method, path in (("LIST", "/v1/secret/forms/"), ("LIST", "/v1/secret/forms"),
                             ("GET", "/v1/secret/forms/?list=true"), ("GET", "/v1/secret/forms?list=true")):
            with self.subTest(method=method, path=path):
                self.assertEqual(self.keys(self.inst.root(method, path)), expected)

    def test_list_does_not_descend_partial_names(self):
        self.inst.write_secret("prefix/abc", {"v": "1"})
        self.inst.write_secret("prefixed/x", {"v": "2"})
        self.assertEqual(self.keys(self.inst.root("LIST", "/v1/secret/prefix/")), ["abc"])

    def test_empty_list_is_404_empty_errors(self):
        self.assertNotFoundEmpty(self.inst.root("LIST", "/v1/secret/nothing-here/"))
        self.assertNotFoundEmpty(self.inst.root("GET", "/v1/secret/nothing-here/?list=true"))

    def test_list_after_deleting_the_last_child(self):
        self.inst.write_secret("gone/sub/only", {"v": "1"})
        self.inst.write_secret("gone/keep", {"v": "1"})
        self.assertEqual(self.keys(self.inst.root("LIST", "/v1/secret/gone/")), ["keep", "sub/"])
        self.assertNoContent(self.inst.root("DELETE", "/v1/secret/gone/sub/only"))
        self.assertEqual(self.keys(self.inst.root("LIST", "/v1/secret/gone/")), ["keep"])
        self.assertNotFoundEmpty(self.inst.root("LIST", "/v1/secret/gone/sub/"))

    def test_list_at_mount_root(self):
        self.inst.write_secret("rootlist/x", {"v": "1"})
        keys = self.keys(self.inst.root("LIST", "/v1/secret/"))
        self.assertIn("rootlist/", keys)

    def test_kv_preflight_reports_version_1(self):
        r = self.inst.root("GET", "/v1/sys/internal/ui/mounts/secret/x")
        self.assertStatus(r, 200)
        data = r.json["data"]
        self.assertEqual(data["path"], "secret/")
        self.assertEqual(data["type"], "kv")
        self.assertEqual(data["options"]["version"], "1")


if __name__ == "__main__":
    unittest.main()
