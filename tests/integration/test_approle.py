"""AppRole auth (issue 6, vault-api.md §1.6) against a real cofferd over mutual TLS: role and
secret-ID administration with the root token, login and what the token may read, the one refusal
message, expiry, CIDR restrictions, ACLs on the administration paths; single-use secret IDs used
concurrently from many threads and from many processes (exactly one 200), the replay in the audit
log and in the daemon log, the first token revoked; a lockout never hides a replay; and hvac
(python3-hvac, a real Vault client) driving AppRole unchanged."""

import http.client
import json
import multiprocessing
import os
import re
import threading
import time
import unittest

from harness import HTTP_TIMEOUT, CofferTestCase, tail

INVALID = {"errors": ["invalid role or secret ID"]}
LOGIN = "/v1/auth/approle/login"


def approle_instance(make, **config):
    """An instance with an audit file, and without the brute-force limits unless `config` sets
    them: the concurrency tests send many failing logins on purpose."""
    inst = make(start=False)
    inst.audit_path = inst.dir / "audit" / "audit.log"
    inst.audit_path.parent.mkdir()
    overrides = {"audit": {"path": str(inst.audit_path), "checkpoint_every": 50},
                 "rate_limit": {"enabled": False}, "lockout": {"enabled": False}}
    overrides.update(config)
    inst.config_overrides = overrides
    inst.write_config()
    inst.start()
    return inst


def audit_records(inst) -> list:
    return [json.loads(line) for line in inst.audit_path.read_text().splitlines() if line.strip()]


def _login_once(host, port, ctx, body: bytes, ready, go, results, index):
    """One login on its own TLS connection: connect (handshake included), wait for the others,
    then send. Runs in a thread or in a forked process."""
    try:
        conn = http.client.HTTPSConnection(host, port, timeout=HTTP_TIMEOUT, context=ctx)
        conn.connect()
        ready()
        go()
        conn.request("POST", LOGIN, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        results[index] = (resp.status, resp.read().decode())
        conn.close()
    except Exception as exc:  # reported by the test as a wrong outcome
        results[index] = (0, f"{type(exc).__name__}: {exc}")


def _process_login(host, port, crt, key, ca, body, barrier, queue, index):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(crt, key)
    results = {}
    _login_once(host, port, ctx, body, lambda: None, barrier.wait, results, index)
    queue.put((index, results[index]))


class TestAppRole(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst = approle_instance(cls.class_instance)
        inst.put_policy("app", 'path "secret/app/*" { capabilities = ["read", "list"] }')
        inst.write_secret("app/db", {"password": "approle-pw"})
        inst.write_secret("other/x", {"k": "outside the app policy"})

    # -- helpers ----------------------------------------------------------------------------------
    def make_role(self, name, **fields):
        body = {"token_policies": ["app"], "token_ttl": "10m"}
        body.update(fields)
        self.assertNoContent(self.inst.root("POST", f"/v1/auth/approle/role/{name}", body))
        r = self.inst.root("GET", f"/v1/auth/approle/role/{name}/role-id")
        return self.assertEnvelope(r)["data"]["role_id"]

    def make_secret(self, role, **fields):
        r = self.inst.root("POST", f"/v1/auth/approle/role/{role}/secret-id", fields or None)
        return self.assertEnvelope(r)["data"]

    def login(self, role_id, secret_id, cert="unit-web"):
        body = {"role_id": role_id}
        if secret_id is not None:
            body["secret_id"] = secret_id
        return self.inst.request("POST", LOGIN, body, cert=cert)

    def lookup_self(self, token, cert="unit-web"):
        return self.inst.request("GET", "/v1/auth/token/lookup-self", cert=cert, token=token)

    def wait_for_log(self, pattern, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.inst.log_text())
            if m:
                return m
            time.sleep(0.05)
        self.fail(f"no log line matching {pattern!r}:\n{tail(self.inst.log_text(), 30)}")

    def replay_records(self, accessor):
        return [x for x in audit_records(self.inst)
                if x.get("type") == "response" and x.get("request", {}).get("path") == "auth/approle/login"
                and accessor in (x.get("error") or "") and "secret ID replayed" in x["error"]]

    # -- administration ---------------------------------------------------------------------------
    def test_role_crud_and_role_id(self):
        role_id = self.make_role("crud", secret_id_num_uses=3, secret_id_ttl="1h",
                                 secret_id_bound_cidrs=["127.0.0.0/8"])
        self.assertRegex(role_id, r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        data = self.assertEnvelope(self.inst.root("GET", "/v1/auth/approle/role/crud"))["data"]
        self.assertEqual(data["secret_id_num_uses"], 3)
        self.assertEqual(data["secret_id_ttl"], 3600)
        self.assertEqual(data["token_ttl"], 600)
        self.assertEqual(data["token_policies"], ["app"])
        self.assertEqual(data["secret_id_bound_cidrs"], ["127.0.0.0/8"])
        self.assertIs(data["bind_secret_id"], True)
        keys = self.assertEnvelope(self.inst.root("LIST", "/v1/auth/approle/role"))["data"]["keys"]
        self.assertIn("crud", keys)
        self.assertEqual(self.inst.root("GET", "/v1/auth/approle/role?list=true").status, 200)

        self.assertNoContent(self.inst.root("POST", "/v1/auth/approle/role/crud/role-id", {"role_id": "crud-custom"}))
        r = self.inst.root("GET", "/v1/auth/approle/role/crud/role-id")
        self.assertEqual(self.assertEnvelope(r)["data"]["role_id"], "crud-custom")

        errors = self.assertJSONError(self.inst.root("POST", "/v1/auth/approle/role/crud", {"token_num_uses": 5}), 400)
        self.assertIn("token_num_uses", errors[0])
        errors = self.assertJSONError(self.inst.root("POST", "/v1/auth/approle/role/open", {"bind_secret_id": False}), 400)
        self.assertIn("at least one constraint should be enabled on the role", errors[0])

        self.assertNoContent(self.inst.root("DELETE", "/v1/auth/approle/role/crud"))
        self.assertNotFoundEmpty(self.inst.root("GET", "/v1/auth/approle/role/crud"))
        self.assertNoContent(self.inst.root("DELETE", "/v1/auth/approle/role/crud"))  # idempotent

    def test_secret_id_generation_lookup_list_destroy(self):
        self.make_role("admin-sid", secret_id_num_uses=2, secret_id_ttl="10m")
        sid = self.make_secret("admin-sid", metadata=json.dumps({"host": "db1"}))
        self.assertRegex(sid["secret_id"], r"^[0-9a-f-]{36}$")
        self.assertEqual(sid["secret_id_ttl"], 600)
        self.assertEqual(sid["secret_id_num_uses"], 2)
        base = "/v1/auth/approle/role/admin-sid"
        errors = self.assertJSONError(self.inst.root("POST", f"{base}/secret-id", {"num_uses": 3}), 400)
        self.assertEqual(errors, ["num_uses cannot be higher than the role's secret_id_num_uses"])
        errors = self.assertJSONError(self.inst.root("POST", f"{base}/secret-id", {"ttl": "1h"}), 400)
        self.assertEqual(errors, ["ttl cannot be longer than the role's secret_id_ttl"])

        listed = self.assertEnvelope(self.inst.root("LIST", f"{base}/secret-id"))["data"]["keys"]
        self.assertEqual(listed, [sid["secret_id_accessor"]])
        looked = self.assertEnvelope(self.inst.root("POST", f"{base}/secret-id/lookup",
                                                    {"secret_id": sid["secret_id"]}))["data"]
        self.assertEqual(looked["secret_id_accessor"], sid["secret_id_accessor"])
        self.assertEqual(looked["metadata"], {"host": "db1"})
        self.assertEqual(looked["secret_id_num_uses"], 2)
        self.assertNotIn(sid["secret_id"], json.dumps(looked))
        by_acc = self.assertEnvelope(self.inst.root("POST", f"{base}/secret-id-accessor/lookup",
                                                    {"secret_id_accessor": sid["secret_id_accessor"]}))["data"]
        self.assertEqual(by_acc, looked)
        self.assertNotFoundEmpty(self.inst.root("POST", f"{base}/secret-id/lookup", {"secret_id": "nope"}))
        r = self.inst.root("POST", f"{base}/secret-id-accessor/lookup", {"secret_id_accessor": "nope"})
        self.assertEqual(self.assertJSONError(r, 404),
                         ['failed to find accessor entry for secret_id_accessor: "nope"'])

        self.assertNoContent(self.inst.root("POST", f"{base}/secret-id-accessor/destroy",
                                            {"secret_id_accessor": sid["secret_id_accessor"]}))
        self.assertEqual(self.login(self.make_role("admin-sid", secret_id_num_uses=2, secret_id_ttl="10m"),
                                    sid["secret_id"]).json, INVALID)
        other = self.make_secret("admin-sid")
        self.assertNoContent(self.inst.root("POST", f"{base}/secret-id/destroy", {"secret_id": other["secret_id"]}))
        self.assertNoContent(self.inst.root("POST", f"{base}/secret-id/destroy", {"secret_id": other["secret_id"]}))
        self.assertNotFoundEmpty(self.inst.root("LIST", f"{base}/secret-id"))

    def test_administration_is_acl_checked_on_the_exact_path(self):
        self.make_role("acl-a")
        self.make_role("acl-b")
        self.inst.put_policy("deployer", 'path "auth/approle/role/acl-a/secret-id" { capabilities = ["update"] }')
        r = self.inst.root("POST", "/v1/auth/token/create", {"policies": ["deployer"]})
        deployer = self.assertEnvelope(r)["auth"]["client_token"]
        ok = self.inst.request("POST", "/v1/auth/approle/role/acl-a/secret-id", {}, cert="unit-admin", token=deployer)
        self.assertIn("secret_id", self.assertEnvelope(ok)["data"])
        for method, path in (("POST", "/v1/auth/approle/role/acl-b/secret-id"),
                             ("GET", "/v1/auth/approle/role/acl-a/role-id"),
                             ("GET", "/v1/auth/approle/role/acl-a"),
                             ("LIST", "/v1/auth/approle/role/acl-a/secret-id"),
                             ("POST", "/v1/auth/approle/role/acl-a"),
                             ("LIST", "/v1/auth/approle/role")):
            with self.subTest(method=method, path=path):
                self.assertPermissionDenied(
                    self.inst.request(method, path, {} if method == "POST" else None, cert="unit-admin", token=deployer))
        # Without a token nothing but the login is reachable.
        self.assertPermissionDenied(self.inst.request("GET", "/v1/auth/approle/role/acl-a/role-id", cert="unit-admin"))

    # -- login ------------------------------------------------------------------------------------
    def test_login_token_reads_what_its_policy_allows(self):
        role_id = self.make_role("reader", token_ttl="10m", token_max_ttl="1h")
        sid = self.make_secret("reader", metadata={"host": "web01"})
        r = self.login(role_id, sid["secret_id"])
        body = self.assertEnvelope(r, 200)
        auth = body["auth"]
        self.assertAuthBlock(auth)
        self.assertEqual(auth["metadata"], {"role_name": "reader", "host": "web01"})
        self.assertEqual(sorted(auth["policies"]), ["app", "default"])
        self.assertEqual(sorted(auth["token_policies"]), ["app", "default"])
        self.assertIn(auth["lease_duration"], (599, 600))  # the TTL left: a second may have passed
        self.assertIs(auth["renewable"], True)
        self.assertEqual(auth["token_type"], "service")
        self.assertIs(auth["orphan"], True)
        self.assertEqual(auth["num_uses"], 0)
        token = auth["client_token"]

        secret = self.inst.request("GET", "/v1/secret/app/db", cert="unit-web", token=token)
        self.assertEqual(self.assertEnvelope(secret)["data"], {"password": "approle-pw"})
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/other/x", cert="unit-web", token=token))
        me = self.assertEnvelope(self.lookup_self(token))["data"]
        self.assertEqual(me["path"], "auth/approle/login")
        self.assertEqual(me["display_name"], "approle")
        # Bound to the client certificate it logged in with.
        self.assertPermissionDenied(self.inst.request("GET", "/v1/secret/app/db", cert="unit-admin", token=token))

    def test_a_deleted_roles_tokens_are_not_renewed(self):
        # As in Vault: deleting a role leaves its tokens alive until they expire, but they cannot
        # be renewed any more.
        role_id = self.make_role("doomed")
        sid = self.make_secret("doomed")
        token = self.assertEnvelope(self.login(role_id, sid["secret_id"]))["auth"]["client_token"]

        def renew():
            return self.inst.request("PUT", "/v1/auth/token/renew-self", {"increment": "5m"},
                                     cert="unit-web", token=token)

        self.assertEqual(self.assertEnvelope(renew())["auth"]["lease_duration"], 300)
        self.assertNoContent(self.inst.root("DELETE", "/v1/auth/approle/role/doomed"))
        self.assertEqual(self.assertJSONError(renew(), 400), ['role "doomed" does not exist during renewal'])
        self.assertEqual(self.lookup_self(token).status, 200)
        # A role of the same name made again is another role: renewal works again (as in Vault,
        # which also checks only the name).
        self.make_role("doomed")
        self.assertEqual(renew().status, 200)

    def test_refusals_all_say_invalid_role_or_secret_id(self):
        role_id = self.make_role("refusals")
        self.make_role("refusals-other")
        theirs = self.make_secret("refusals-other")["secret_id"]
        mine = self.make_secret("refusals")["secret_id"]
        for rid, sid in (("no-such-role-id", mine), (role_id, "00000000-0000-0000-0000-000000000000"),
                         (role_id, theirs), (role_id, None), (role_id, ""), ("x" * 5000, mine)):
            with self.subTest(role_id=rid[:20], secret_id=sid):
                r = self.login(rid, sid)
                self.assertJSONError(r, 400)
                self.assertEqual(r.json, INVALID)
        r = self.login("", mine)
        self.assertEqual(self.assertJSONError(r, 400), ["missing role_id"])
        self.assertEqual(self.login(role_id, mine).status, 200)  # none of the above consumed anything

    def test_expired_secret_id_is_refused(self):
        role_id = self.make_role("expiring", secret_id_ttl="2s")
        sid = self.make_secret("expiring")
        self.assertEqual(sid["secret_id_ttl"], 2)
        time.sleep(2.5)
        self.assertEqual(self.login(role_id, sid["secret_id"]).json, INVALID)

    def test_cidr_restrictions(self):
        far = self.make_role("cidr-far", secret_id_bound_cidrs=["10.0.0.0/8"])
        sid = self.make_secret("cidr-far")["secret_id"]
        self.assertEqual(self.login(far, sid).json, INVALID)  # we come from 127.0.0.1
        near = self.make_role("cidr-near", secret_id_bound_cidrs=["127.0.0.0/8"])
        r = self.inst.root("POST", "/v1/auth/approle/role/cidr-near/secret-id", {"cidr_list": "10.0.0.0/8"})
        self.assertIn("failed to verify the CIDR restrictions", self.assertJSONError(r, 400)[0])
        narrow = self.make_secret("cidr-near", cidr_list="127.0.0.1/32")["secret_id"]
        self.assertEqual(self.login(near, narrow).status, 200)
        # bind_secret_id=false: the address alone (plus the client certificate) logs in.
        probe = self.make_role("cidr-probe", bind_secret_id=False, secret_id_bound_cidrs=["127.0.0.1/32"])
        self.assertEqual(self.login(probe, None).status, 200)

    # -- single use, replay -----------------------------------------------------------------------
    def test_replay_is_refused_audited_logged_and_revokes_the_first_token(self):
        role_id = self.make_role("once", secret_id_num_uses=1)
        sid = self.make_secret("once")
        first = self.login(role_id, sid["secret_id"])
        token = self.assertEnvelope(first, 200)["auth"]["client_token"]
        self.assertEqual(self.lookup_self(token).status, 200)

        replay = self.login(role_id, sid["secret_id"])
        self.assertEqual(replay.status, 400)
        self.assertEqual(replay.json, INVALID)
        self.assertPermissionDenied(self.lookup_self(token))

        recs = self.replay_records(sid["secret_id_accessor"])
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["error"],
                         f'invalid role or secret ID; secret ID replayed: role "once", secret_id_accessor '
                         f'{sid["secret_id_accessor"]}, 1 token(s) revoked')
        self.assertEqual(recs[0]["response"]["status_code"], 400)

        line = self.wait_for_log(r"approle: secret ID replayed: role \"once\", secret_id_accessor "
                                 + re.escape(sid["secret_id_accessor"]) + r", 1 token\(s\) revoked")
        self.assertIsNotNone(line)
        self.assertNotIn(sid["secret_id"], self.inst.log_text(), "the secret ID is in the daemon log")

    def test_audit_hmacs_the_secret_id_in_requests_and_responses(self):
        role_id = self.make_role("audited", secret_id_num_uses=1)
        sid = self.make_secret("audited")
        self.assertEqual(self.login(role_id, sid["secret_id"]).status, 200)
        raw = self.inst.audit_path.read_text()
        self.assertNotIn(sid["secret_id"], raw, "secret ID in clear in the audit log")
        hashed = self.assertEnvelope(self.inst.root("PUT", "/v1/sys/audit-hash/file",
                                                    {"input": sid["secret_id"]}))["data"]["hash"]
        recs = audit_records(self.inst)
        generated = [x for x in recs if x["type"] == "response"
                     and x["request"]["path"] == "auth/approle/role/audited/secret-id"]
        self.assertEqual(generated[-1]["response"]["data"]["secret_id"], hashed)
        logins = [x for x in recs if x["type"] == "request" and x["request"]["path"] == "auth/approle/login"]
        self.assertIn(hashed, [x["request"].get("data", {}).get("secret_id") for x in logins])

    def _single_use_secret(self, role):
        role_id = self.make_role(role, secret_id_num_uses=1)
        return role_id, self.make_secret(role)

    def _check_exactly_one(self, results, sid):
        statuses = sorted(status for status, _ in results)
        self.assertEqual(statuses.count(200), 1, results)
        self.assertEqual(statuses.count(400), len(results) - 1, results)
        for status, body in results:
            if status == 400:
                self.assertEqual(json.loads(body), INVALID)
        token = next(json.loads(body)["auth"]["client_token"] for status, body in results if status == 200)
        self.assertPermissionDenied(self.lookup_self(token))  # revoked by the replays
        recs = self.replay_records(sid["secret_id_accessor"])
        self.assertEqual(len(recs), len(results) - 1)
        revoked = sorted(int(re.search(r"(\d+) token\(s\) revoked", x["error"]).group(1)) for x in recs)
        self.assertEqual(revoked, [0] * (len(results) - 2) + [1])

    def test_concurrent_double_use_from_many_threads(self):
        role_id, sid = self._single_use_secret("race-threads")
        n = 16
        body = json.dumps({"role_id": role_id, "secret_id": sid["secret_id"]}).encode()
        ctx = self.inst.client.context("unit-web")
        connected = threading.Barrier(n + 1)
        go = threading.Event()
        results = [None] * n
        threads = [threading.Thread(target=_login_once,
                                    args=("127.0.0.1", self.inst.port, ctx, body, connected.wait, go.wait, results, i))
                   for i in range(n)]
        for t in threads:
            t.start()
        connected.wait(timeout=30)  # every connection has done its TLS handshake
        go.set()
        for t in threads:
            t.join(60)
        self._check_exactly_one(results, sid)

    def test_concurrent_double_use_from_many_processes(self):
        role_id, sid = self._single_use_secret("race-procs")
        n = 12
        body = json.dumps({"role_id": role_id, "secret_id": sid["secret_id"]}).encode()
        crt, key = self.pki.cert("unit-web")
        mp = multiprocessing.get_context("fork")
        barrier = mp.Barrier(n)
        queue = mp.Queue()
        procs = [mp.Process(target=_process_login,
                            args=("127.0.0.1", self.inst.port, crt, key, self.pki.ca, body, barrier, queue, i))
                 for i in range(n)]
        for p in procs:
            p.start()
        results = [None] * n
        for _ in range(n):
            index, outcome = queue.get(timeout=60)
            results[index] = outcome
        for p in procs:
            p.join(30)
        self._check_exactly_one(results, sid)


class TestAppRoleLockout(CofferTestCase):
    """With the login lockout on: failed AppRole logins lock the role_id out, and a replay during
    the lockout still revokes what the first use produced."""

    def test_lockout_never_hides_a_replay(self):
        inst = approle_instance(self.new_instance,
                                lockout={"enabled": True, "threshold": 2, "duration": "10m", "counter_reset": "10m"})
        inst.put_policy("app", 'path "secret/app/*" { capabilities = ["read"] }')
        self.assertNoContent(inst.root("POST", "/v1/auth/approle/role/locked",
                                       {"token_policies": ["app"], "secret_id_num_uses": 1}))
        role_id = self.assertEnvelope(inst.root("GET", "/v1/auth/approle/role/locked/role-id"))["data"]["role_id"]
        sid = self.assertEnvelope(inst.root("POST", "/v1/auth/approle/role/locked/secret-id"))["data"]
        fresh = self.assertEnvelope(inst.root("POST", "/v1/auth/approle/role/locked/secret-id"))["data"]

        first = inst.request("POST", LOGIN, {"role_id": role_id, "secret_id": sid["secret_id"]}, cert="unit-web")
        token = self.assertEnvelope(first)["auth"]["client_token"]
        for _ in range(2):  # wrong guesses: the second starts the lockout
            r = inst.request("POST", LOGIN, {"role_id": role_id, "secret_id": "wrong"}, cert="unit-web")
            self.assertEqual(r.json, INVALID)
        locked = inst.request("POST", LOGIN, {"role_id": role_id, "secret_id": fresh["secret_id"]}, cert="unit-web")
        self.assertPermissionDenied(locked)  # valid credentials, but locked out

        replay = inst.request("POST", LOGIN, {"role_id": role_id, "secret_id": sid["secret_id"]}, cert="unit-web")
        self.assertPermissionDenied(replay)
        self.assertPermissionDenied(inst.request("GET", "/v1/auth/token/lookup-self", cert="unit-web", token=token))
        errors = [x.get("error", "") for x in audit_records(inst)
                  if x["type"] == "response" and x["request"]["path"] == "auth/approle/login"]
        self.assertTrue(any("locked out" in e and "secret ID replayed" in e and "1 token(s) revoked" in e
                            for e in errors), errors)
        self.assertTrue(any(e.startswith("permission denied: login for approle:") for e in errors), errors)


class TestAppRoleHvac(CofferTestCase):
    """python3-hvac 0.11 drives AppRole as it would drive Vault."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for k in [k for k in os.environ if k.startswith("VAULT_")]:
            del os.environ[k]
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
        cls.inst = approle_instance(cls.class_instance)
        cls.inst.put_policy("app", 'path "secret/app/*" { capabilities = ["read"] }')
        cls.inst.write_secret("app/db", {"password": "hvac-approle"})

    def client(self, cert, token=None):
        import hvac
        crt, key = self.pki.cert(cert)
        c = hvac.Client(url=f"https://127.0.0.1:{self.inst.port}", cert=(crt, key), verify=self.pki.ca,
                        token=token, timeout=15)
        self.addCleanup(c.adapter.close)
        return c

    def test_hvac_approle_workflow(self):
        import hvac.exceptions
        admin = self.client("unit-admin", token=self.inst.root_token)
        admin.auth.approle.create_or_update_approle(role_name="hvac-app", token_policies=["app"], token_ttl="10m",
                                                    secret_id_num_uses=1, secret_id_ttl="10m",
                                                    secret_id_bound_cidrs=["127.0.0.0/8"], token_type="default")
        self.assertIn("hvac-app", admin.auth.approle.list_roles()["data"]["keys"])
        self.assertEqual(admin.auth.approle.read_role("hvac-app")["data"]["secret_id_num_uses"], 1)
        role_id = admin.auth.approle.read_role_id("hvac-app")["data"]["role_id"]
        generated = admin.auth.approle.generate_secret_id("hvac-app", metadata={"unit": "web"},
                                                          cidr_list=["127.0.0.1/32"])["data"]
        self.assertEqual(generated["secret_id_num_uses"], 1)
        self.assertEqual(admin.auth.approle.list_secret_id_accessors("hvac-app")["data"]["keys"],
                         [generated["secret_id_accessor"]])

        unit = self.client("unit-web")
        login = unit.auth.approle.login(role_id=role_id, secret_id=generated["secret_id"])
        self.assertEqual(login["auth"]["metadata"], {"role_name": "hvac-app", "unit": "web"})
        self.assertTrue(unit.is_authenticated())
        self.assertEqual(unit.secrets.kv.v1.read_secret(path="app/db", mount_point="secret")["data"],
                         {"password": "hvac-approle"})

        again = self.client("unit-web")
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            again.auth.approle.login(role_id=role_id, secret_id=generated["secret_id"])
        self.assertIn("invalid role or secret ID", cm.exception.errors or [])
        self.assertFalse(unit.is_authenticated())  # the replay revoked the first token

        admin.auth.approle.delete_role("hvac-app")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            admin.auth.approle.read_role("hvac-app")


if __name__ == "__main__":
    unittest.main()
