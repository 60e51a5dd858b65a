"""Brute-force defences against a real cofferd (issue 6, brief §4): token-bucket rate limits per
client certificate and per source address answer 429 with Retry-After and Vault's quota error;
sys/health, sys/seal-status and sys/leader keep answering during a flood; login lockout refuses a
correct cert login after repeated failures until the lockout duration has passed, and a success
resets the count; every refusal is in the audit log."""

import hashlib
import json
import math
import ssl
import time
import unittest

from harness import CERT_LOGIN_FAILED, CofferTestCase, setup_web

LOGIN_RATE = 1.0       # per second, per certificate
LOGIN_BURST = 15
LOCKOUT_THRESHOLD = 3
LOCKOUT_SECONDS = 3
QUOTA_ERROR = 'request path "auth/cert/login": rate limit quota exceeded'


def fingerprint(pki, name: str) -> str:
    """The SHA-256 of a client certificate's DER, as cofferd names the identity."""
    crt, _ = pki.cert(name)
    with open(crt) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def audited(inst, overrides: dict):
    inst.audit_path = inst.dir / "audit" / "audit.log"
    inst.audit_path.parent.mkdir()
    inst.config_overrides = {"audit": {"path": str(inst.audit_path)}, **overrides}
    inst.write_config()
    inst.start()
    return inst


def records(inst) -> list:
    return [json.loads(line) for line in inst.audit_path.read_text().splitlines()]


class TestLoginRateLimitAndLockout(CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst = audited(cls.class_instance(start=False), {
            # Per address: out of the way (every certificate here comes from 127.0.0.1).
            "rate_limit.login": {"identity_rate": LOGIN_RATE, "identity_burst": LOGIN_BURST,
                                 "address_rate": 1000.0, "address_burst": 1000},
            "lockout": {"threshold": LOCKOUT_THRESHOLD, "duration": f"{LOCKOUT_SECONDS}s",
                        "counter_reset": "1m"},
        })
        setup_web(cls.inst)

    def login(self, cert: str, role: str):
        return self.inst.request("POST", "/v1/auth/cert/login", {"name": role}, cert=cert)

    # unit-other (CN web02) matches no role: a brute force of cert login.
    def test_login_flood_gets_429_with_retry_after_while_health_answers(self):
        start = time.monotonic()
        answers = [self.login("unit-other", "web") for _ in range(2 * LOGIN_BURST)]
        elapsed = time.monotonic() - start
        statuses = [r.status for r in answers]
        # The bucket starts full: the first `burst` attempts reach the login (400, then 403 once
        # the lockout started), never 429.
        self.assertNotIn(429, statuses[:LOGIN_BURST], statuses)
        self.assertEqual(set(statuses[:LOGIN_BURST]) - {400, 403}, set(), statuses)
        limited = [r for r in answers if r.status == 429]
        self.assertTrue(limited, f"no 429 after {len(answers)} logins in {elapsed:.2f}s: {statuses}")
        # No more got through than the bucket allows in the time the flood took.
        allowed = len(answers) - len(limited)
        self.assertLessEqual(allowed, LOGIN_BURST + math.ceil(elapsed * LOGIN_RATE) + 1, statuses)
        for r in limited:
            self.assertEqual(self.assertJSONError(r, 429), [QUOTA_ERROR])
            self.assertSecurityHeaders(r)
            retry = r.header("Retry-After")
            self.assertIsNotNone(retry, repr(r))
            self.assertRegex(retry, r"^[0-9]+$")
            self.assertTrue(1 <= int(retry) <= math.ceil(1 / LOGIN_RATE), retry)

        # The probes answer during the flood, over the flooding certificate too (that they are
        # exempt, not merely in another class, is shown in TestAddressRateLimit).
        for path in ("/v1/sys/health", "/v1/sys/seal-status", "/v1/sys/leader"):
            self.assertStatus(self.inst.request("GET", path, cert="unit-other"), 200, path)
        # Other certificates are not limited by unit-other's bucket.
        r = self.inst.root("GET", "/v1/sys/policies/acl/web")
        self.assertEnvelope(r)

        # Retry-After is honest: after waiting that long the login is attempted again (400 or 403).
        time.sleep(int(limited[-1].header("Retry-After")) + 0.2)
        self.assertIn(self.login("unit-other", "web").status, (400, 403))

        # Every 429 is in the audit log: a request and a response record, naming the certificate.
        fp = fingerprint(self.pki, "unit-other")
        mine = [x for x in records(self.inst) if x.get("request", {}).get("path") == "auth/cert/login"
                and x["request"].get("client_certificate_sha256") == fp]
        for kind in ("request", "response"):
            quota = [x for x in mine if x["type"] == kind and "rate limit quota exceeded" in x.get("error", "")]
            self.assertEqual(len(quota), len(limited), f"{kind} records of 429s")
        for x in mine:
            if x["type"] == "response" and "rate limit" in x.get("error", ""):
                self.assertEqual(x["response"]["status_code"], 429)
                self.assertNotIn("auth", x, "a refused request names no token")
        # Health probes stay out of the audit log, as in Vault.
        self.assertFalse([x for x in records(self.inst) if x.get("request", {}).get("path") == "sys/health"])

    # unit-web (CN web01) has a role: wrong role names are failed logins; after the threshold even
    # the right role is refused until the lockout duration has passed.
    def test_lockout_refuses_a_correct_login_until_the_duration_passes(self):
        fp = fingerprint(self.pki, "unit-web")
        key = f"cert:{fp}"
        self.assertStatus(self.login("unit-web", "web"), 200)
        for i in range(LOCKOUT_THRESHOLD):
            r = self.login("unit-web", f"no-such-role-{i}")
            self.assertEqual(self.assertJSONError(r, 400), [CERT_LOGIN_FAILED], f"failure {i + 1}")
        locked_at = time.monotonic()
        r = self.login("unit-web", "web")
        # Vault answers a locked user with a plain permission denied, before checking credentials.
        self.assertEqual(self.assertJSONError(r, 403), ["permission denied"])
        self.assertLess(time.monotonic() - locked_at, LOCKOUT_SECONDS, "too slow to observe the lockout")
        log = self.inst.log_text(since_start=True)
        self.assertRegex(log, rf"warning: login lockout: {key} is locked out until \d{{4}}-\d\d-\d\dT[0-9:]+Z "
                              rf"after {LOCKOUT_THRESHOLD} failed logins")

        recs = [x for x in records(self.inst) if x.get("request", {}).get("client_certificate_sha256") == fp
                and x["type"] == "response"]
        started = [x for x in recs if "lockout started" in x.get("error", "")]
        self.assertEqual(len(started), 1, [x.get("error") for x in recs])
        self.assertEqual(started[0]["response"]["status_code"], 400)
        refused = recs[-1]
        self.assertEqual(refused["response"]["status_code"], 403)
        self.assertIn(f"login for {key} is locked out until", refused["error"])

        time.sleep(max(0.0, locked_at + LOCKOUT_SECONDS + 0.5 - time.monotonic()))
        self.assertEnvelope(self.login("unit-web", "web"))

        # A success resets the count: two failures, a success, two failures, and still no lockout.
        for _ in range(2):
            for i in range(LOCKOUT_THRESHOLD - 1):
                self.assertStatus(self.login("unit-web", "wrong"), 400)
            self.assertEnvelope(self.login("unit-web", "web"))


class TestAddressRateLimit(CofferTestCase):
    """Per source address: every certificate from 127.0.0.1 draws on one bucket."""

    ADDRESS_BURST = 5

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst = audited(cls.class_instance(start=False), {
            "rate_limit.read": {"address_rate": 0.1, "address_burst": cls.ADDRESS_BURST},
        })

    def test_reads_from_one_address_share_a_bucket_whatever_the_certificate(self):
        certs = ("unit-web", "unit-other", "unit-admin")
        answers = [self.inst.request("GET", "/v1/secret/anything", cert=certs[i % 3])
                   for i in range(self.ADDRESS_BURST + 3)]
        statuses = [r.status for r in answers]
        self.assertEqual(statuses[:self.ADDRESS_BURST], [403] * self.ADDRESS_BURST, statuses)
        self.assertEqual(statuses[self.ADDRESS_BURST:], [429] * 3, statuses)
        r = answers[-1]
        self.assertEqual(self.assertJSONError(r, 429),
                         ['request path "secret/anything": rate limit quota exceeded'])
        self.assertRegex(r.header("Retry-After") or "", r"^([1-9]|10)$")
        # Writes are another class. The probes are exempt: GETs like the refused ones, they answer
        # while this address's read bucket is empty (as the last read shows).
        self.assertStatus(self.inst.root("PUT", "/v1/secret/anything", {"v": "1"}), 204)
        for path in ("/v1/sys/health", "/v1/sys/seal-status", "/v1/sys/leader"):
            self.assertStatus(self.inst.request("GET", path, cert="unit-web"), 200, path)
        self.assertStatus(self.inst.root("GET", "/v1/secret/anything"), 429)


if __name__ == "__main__":
    unittest.main()
