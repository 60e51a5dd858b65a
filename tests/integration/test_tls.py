"""mTLS is always on: no client certificate, a foreign CA, an expired or a revoked certificate
never reach HTTP (brief §4: "No client certificate, no HTTP request")."""

import http.client
import shutil
import signal
import tempfile
import time
import socket
import ssl
import unittest
from pathlib import Path

from harness import CofferTestCase

REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine,
           http.client.IncompleteRead)


def instance_with_replaceable_crl(test):
    """A new instance whose crl_file (returned) starts as the CA's empty CRL and may be replaced."""
    crl_dir = Path(tempfile.mkdtemp(prefix="coffer-it-crl-"))
    test.addCleanup(shutil.rmtree, crl_dir, True)
    crl = crl_dir / "client.crl"
    shutil.copyfile(test.pki.dir / "ca-empty.crl", crl)
    return test.new_instance(crl=str(crl)), crl


class RefusalMixin:
    def assertRefused(self, inst, cert, tls=None):
        """The connection fails at TLS: no HTTP status line ever comes back."""
        try:
            resp = inst.request("GET", "/v1/sys/health", cert=cert, tls=tls, timeout=10)
        except REFUSED:
            return
        except (socket.timeout, TimeoutError):
            self.fail(f"client cert {cert!r} (TLS {tls or 'any'}): server neither refused nor answered in 10 s")
        self.fail(f"client cert {cert!r} (TLS {tls or 'any'}) reached HTTP: {resp!r}")

    def tls_versions(self, inst):
        """The TLS versions the server offers (checked with a valid client certificate)."""
        versions = []
        for v in ("1.2", "1.3"):
            try:
                if inst.request("GET", "/v1/sys/health", cert="unit-admin", tls=v, timeout=10).status == 200:
                    versions.append(v)
            except REFUSED:
                pass
        self.assertTrue(versions, "no TLS version worked even with a valid client certificate")
        return versions


class TestMutualTLS(RefusalMixin, CofferTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst = cls.class_instance()

    def test_valid_client_certificates_accepted(self):
        for cert in ("unit-admin", "unit-web", "unit-other"):
            with self.subTest(cert=cert):
                r = self.inst.request("GET", "/v1/sys/health", cert=cert)
                self.assertStatus(r, 200)

    def test_server_certificate_valid_for_ip_and_localhost(self):
        for name in ("127.0.0.1", "localhost"):
            with self.subTest(server_hostname=name):
                r = self.inst.request("GET", "/v1/sys/health", cert="unit-admin", server_hostname=name)
                self.assertStatus(r, 200)

    def test_tls_1_3_offered(self):
        self.assertIn("1.3", self.tls_versions(self.inst), "the server should offer TLS 1.3")

    def test_no_client_certificate_refused(self):
        for v in self.tls_versions(self.inst):
            with self.subTest(tls=v):
                self.assertRefused(self.inst, None, tls=v)
                # Not even the unauthenticated health endpoint is served without a certificate.

    def test_foreign_ca_refused(self):
        for v in self.tls_versions(self.inst):
            with self.subTest(tls=v):
                self.assertRefused(self.inst, "foreign", tls=v)

    def test_expired_certificate_refused(self):
        for v in self.tls_versions(self.inst):
            with self.subTest(tls=v):
                self.assertRefused(self.inst, "expired", tls=v)

    def test_server_still_healthy_after_refusals(self):
        for cert in (None, "foreign", "expired", None):
            self.assertRefused(self.inst, cert)
        self.assertStatus(self.inst.request("GET", "/v1/sys/health", cert="unit-web"), 200)
        self.assertTrue(self.inst.running)

    def test_refused_certificates_never_get_a_token(self):
        # The login endpoint is unauthenticated at the HTTP level: it must still be behind mTLS.
        for cert in (None, "foreign", "expired"):
            with self.subTest(cert=cert):
                try:
                    r = self.inst.request("POST", "/v1/auth/cert/login", {}, cert=cert, timeout=10)
                except REFUSED:
                    continue
                self.fail(f"login with {cert!r} reached HTTP: {r!r}")


class TestRevocation(RefusalMixin, CofferTestCase):
    """make-pki.sh makes a `revoked` certificate and a CRL (ca.crl) of the dev CA that lists it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        assert cls.pki.has("revoked") and cls.pki.crl, "make-pki.sh made no revoked certificate / CRL"
        cls.inst = cls.class_instance(crl=cls.pki.crl)

    def test_revoked_certificate_refused(self):
        for v in self.tls_versions(self.inst):
            with self.subTest(tls=v):
                self.assertRefused(self.inst, "revoked", tls=v)

    def test_unrevoked_certificates_still_accepted_with_crl(self):
        for cert in ("unit-web", "unit-admin"):
            with self.subTest(cert=cert):
                self.assertStatus(self.inst.request("GET", "/v1/sys/health", cert=cert), 200)


class TestCrlReloadOnSighup(RefusalMixin, CofferTestCase):
    """SIGHUP makes cofferd re-read crl_file: a certificate revoked after start is refused from then on."""

    def test_sighup_applies_a_new_crl(self):
        inst, crl = instance_with_replaceable_crl(self)
        self.assertStatus(inst.request("GET", "/v1/sys/health", cert="revoked"), 200)
        shutil.copyfile(self.pki.crl, crl)
        inst.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            try:
                inst.request("GET", "/v1/sys/health", cert="revoked", timeout=5)
            except REFUSED:
                break
            if time.monotonic() > deadline:
                self.fail("revoked certificate still accepted 10 s after SIGHUP with the new CRL")
            time.sleep(0.2)
        self.assertStatus(inst.request("GET", "/v1/sys/health", cert="unit-web"), 200)
        self.assertIn("client CRL reloaded", inst.log_text())



class TestSessionResumption(CofferTestCase):
    """TLS session tickets ([listener] tls_ticket_lifetime, on by default): a reconnecting unit
    resumes without a full handshake, and a resumed connection whose certificate was revoked
    since (new CRL + SIGHUP) is refused before any request runs."""

    def exchange(self, inst, ctx, session=None):
        """One GET over a new connection; returns (new session, resumed?, bytes received)."""
        raw = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
        sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
        data = b""
        try:
            sock.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except REFUSED:
            pass
        finally:
            reused, new_session = sock.session_reused, sock.session
            sock.close()
        return new_session, reused, data

    def test_resumed_connection_is_served_and_rechecked_against_a_new_crl(self):
        inst, crl = instance_with_replaceable_crl(self)
        for tls in ("1.2", "1.3"):
            with self.subTest(tls=tls):
                ctx = inst.client.context("revoked", tls=tls)
                session, reused, data = self.exchange(inst, ctx)
                self.assertFalse(reused)
                self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
                self.assertIsNotNone(session)
                _, reused, data = self.exchange(inst, ctx, session)
                self.assertTrue(reused, "cofferd did not resume the session")
                self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])

        ctx = inst.client.context("revoked", tls="1.3")
        session, _, _ = self.exchange(inst, ctx)
        shutil.copyfile(self.pki.crl, crl)
        inst.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "client CRL reloaded" not in inst.log_text():
            self.assertLess(time.monotonic(), deadline, "no CRL reload 10 s after SIGHUP")
            time.sleep(0.1)
        _, _, data = self.exchange(inst, ctx, session)
        self.assertNotIn(b"HTTP/", data, "a resumed session of a revoked certificate reached HTTP")
        self.assertIn("refused at request: The certificate is NOT trusted. The certificate chain is revoked",
                      inst.log_text())

    def test_no_resumption_when_tickets_are_off(self):
        inst = self.new_instance(config_overrides={"listener": {"tls_ticket_lifetime": "0s"}})
        ctx = inst.client.context("unit-web", tls="1.3")
        session, _, data = self.exchange(inst, ctx)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        _, reused, data = self.exchange(inst, ctx, session)
        self.assertFalse(reused)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])

if __name__ == "__main__":
    unittest.main()
