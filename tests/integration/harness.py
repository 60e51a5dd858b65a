"""End-to-end test harness: real cofferd and cofferctl processes, a real key protector (a SoftHSM
token, or a swtpm TPM 2.0), real mTLS.

Each CofferInstance owns one temporary directory (config, sqlite file, SoftHSM token or swtpm state,
PIN / auth-value credential, daemon log) and free loopback ports, so test modules can run in
parallel. The
PKI (tests/support/make-pki.sh) is made once per test class. Everything started here is stopped
and removed again, also when a test fails: cleanups are registered with unittest (addCleanup /
addClassCleanup), instances are context managers, and an atexit hook plus PR_SET_PDEATHSIG cover
the rest.

Stdlib only (Debian's /usr/bin/python3). Knobs, all optional:
  COFFER_BUILD_DIR    where cofferd/cofferctl were built (default <source>/build)
  COFFER_SOURCE_DIR   the source tree (default: two levels above this file)
  COFFER_MAKE_PKI     the PKI script (default <source>/tests/support/make-pki.sh)
  COFFER_TEST_PROTECTOR  "pkcs11" (default: a SoftHSM token per instance) or "tpm" (a swtpm per
                         instance, the master key bound to PCR 16 and an auth-value credential)
  COFFER_TEST_KEEP=1     keep the temporary directories (their paths are printed)
  COFFER_TEST_VERBOSE=1  print every daemon log when the daemon stops
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("COFFER_SOURCE_DIR") or Path(__file__).resolve().parents[2])
BUILD_DIR = Path(os.environ.get("COFFER_BUILD_DIR") or SOURCE_DIR / "build")
COFFERD = BUILD_DIR / "daemon" / "cofferd"
COFFERCTL = BUILD_DIR / "cli" / "cofferctl"
MAKE_PKI = Path(os.environ.get("COFFER_MAKE_PKI") or SOURCE_DIR / "tests" / "support" / "make-pki.sh")

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/softhsm/libsofthsm2.so",
)
TOKEN_LABEL = "coffer"
MASTER_KEY_LABEL = "coffer-mk-1"
PIN_CREDENTIAL = "coffer-pkcs11-pin"

READY_TIMEOUT = 15.0      # seconds for cofferd to answer GET /v1/sys/health
STOP_TIMEOUT = 10.0       # seconds between SIGTERM and SIGKILL
HTTP_TIMEOUT = 15.0

PROTECTOR = os.environ.get("COFFER_TEST_PROTECTOR") or "pkcs11"
if PROTECTOR not in ("pkcs11", "tpm"):
    raise SystemExit(f"harness: COFFER_TEST_PROTECTOR={PROTECTOR!r}: expected 'pkcs11' or 'tpm'")
TPM = PROTECTOR == "tpm"
TPM_AUTH_CREDENTIAL = "coffer-tpm-auth"
TPM_PCRS = (16,)          # resettable from locality 0, zero after swtpm's startup-clear
# What the credential cofferd reads is called in its messages ("cannot read the PKCS#11 PIN" /
# "cannot read the TPM auth value").
CREDENTIAL_WORD = "auth value" if TPM else "PIN"

KEEP = os.environ.get("COFFER_TEST_KEEP") == "1"
VERBOSE = os.environ.get("COFFER_TEST_VERBOSE") == "1"

# Files make-pki.sh must produce (<name>.crt + <name>.key); "revoked" and a CRL are optional.
REQUIRED_PKI = ("ca", "server", "unit-web", "unit-admin", "unit-other", "foreign", "expired")

# Vault's KV v1 default lease (32 days) and the exact cert-auth failure message.
KV_DEFAULT_LEASE = 2764800
CERT_LOGIN_FAILED = "invalid certificate or no client certificate supplied"


class HarnessError(AssertionError):
    """The environment could not be set up (reported as a test failure with the evidence)."""


def pkcs11_only(reason: str):
    """Skip a test (or class) in the TPM run only: it checks something that exists only with a
    PKCS#11 token (its objects, its PIN, its labels) and has no cheap TPM equivalent."""
    return unittest.skipIf(TPM, f"PKCS#11-specific, no TPM equivalent: {reason}")


# --------------------------------------------------------------------------------------------
# process hygiene

_LIVE: "set[CofferInstance]" = set()

try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _LIBC = None


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies (even by SIGKILL)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


@atexit.register
def _cleanup_all() -> None:
    for inst in list(_LIVE):
        try:
            inst.cleanup()
        except Exception as exc:  # pragma: no cover - last resort
            print(f"harness: cleanup of {inst.dir} failed: {exc}", file=sys.stderr)


def _on_sigterm(signum, frame):  # ctest's timeout, a CI runner stopping: still clean up
    raise SystemExit(128 + signum)


if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)


def softhsm_module() -> str:
    for cand in SOFTHSM_MODULE_CANDIDATES:
        if os.path.exists(cand):
            return cand
    raise HarnessError("libsofthsm2.so not found (run: bash scripts/install-deps.sh)")


def require_binaries() -> None:
    missing = [str(p) for p in (COFFERD, COFFERCTL) if not os.access(p, os.X_OK)]
    if missing:
        raise HarnessError(
            "not built: " + ", ".join(missing) + " (run: bash scripts/build.sh, or set COFFER_BUILD_DIR)")
    tools = ("swtpm", "openssl") if TPM else ("softhsm2-util", "pkcs11-tool", "openssl")
    for tool in tools:
        if shutil.which(tool) is None:
            raise HarnessError(f"{tool} not installed (run: bash scripts/install-deps.sh)")


def free_port() -> int:
    """A loopback port that was free a moment ago (start() retries if it got taken since)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair() -> int:
    """A loopback port P with P+1 free too (swtpm: the TPM on P, its control channel on P+1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            if p >= 65535:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as b:
                    b.bind(("127.0.0.1", p + 1))
                    return p
            except OSError:
                continue
    raise HarnessError("no free loopback port pair for swtpm")


def child_env(**extra: str) -> dict:
    """The environment for cofferd/cofferctl/SoftHSM tools: ours, minus anything coffer- or
    Vault-related that a developer's shell may carry (a sourced .dev/env, a system SOFTHSM2_CONF,
    a TPM2TOOLS_TCTI)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "TPM2TOOLS_", "TSS2_"))
           and k not in ("SOFTHSM2_CONF", "CREDENTIALS_DIRECTORY", "COFFER_TEST_PROTECTOR")}
    env.update(extra)
    return env


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# PKI


class PKI:
    """The output of tests/support/make-pki.sh in one directory."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    @classmethod
    def create(cls, directory) -> "PKI":
        directory = Path(directory)
        if not MAKE_PKI.exists():
            raise HarnessError(f"PKI script missing: {MAKE_PKI}")
        cp = subprocess.run(["bash", str(MAKE_PKI), str(directory)], capture_output=True, text=True,
                            timeout=120, env=child_env())
        if cp.returncode != 0:
            raise HarnessError(f"{MAKE_PKI} failed (exit {cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
        pki = cls(directory)
        missing = [f"{n}.{ext}" for n in REQUIRED_PKI for ext in ("crt", "key")
                   if not (directory / f"{n}.{ext}").exists()]
        if missing:
            raise HarnessError(f"{MAKE_PKI} did not produce: {', '.join(missing)}")
        return pki

    def has(self, name: str) -> bool:
        return (self.dir / f"{name}.crt").exists() and (self.dir / f"{name}.key").exists()

    def cert(self, name: str) -> tuple[str, str]:
        crt, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        if not crt.exists() or not key.exists():
            raise HarnessError(f"PKI has no client certificate {name!r} in {self.dir}")
        return str(crt), str(key)

    @property
    def ca(self) -> str:
        return str(self.dir / "ca.crt")

    def pem(self, name: str = "ca") -> str:
        return (self.dir / f"{name}.crt").read_text()

    @property
    def crl(self) -> str | None:
        """The dev CA's CRL, if make-pki.sh made one (name not fixed by the contract)."""
        for cand in ("ca.crl", "crl.pem", "ca-crl.pem", "revoked.crl", "ca.crl.pem"):
            if (self.dir / cand).exists():
                return str(self.dir / cand)
        found = sorted(glob.glob(str(self.dir / "*.crl")))
        return found[0] if found else None


# --------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status: int, reason: str, headers: http.client.HTTPMessage, body: bytes,
                 method: str, path: str):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body
        self.method, self.path = method, path
        self._json = None
        self._json_parsed = False

    @property
    def json(self):
        """The parsed body, or None when it is empty or not JSON."""
        if not self._json_parsed:
            self._json_parsed = True
            try:
                self._json = json.loads(self.body) if self.body else None
            except ValueError:
                self._json = None
        return self._json

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def errors(self):
        j = self.json
        return j.get("errors") if isinstance(j, dict) else None

    def __repr__(self) -> str:
        body = self.body[:600].decode("utf-8", "replace")
        return f"<{self.method} {self.path} -> {self.status} {self.reason}: {body!r}>"


_TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class Client:
    """One HTTPS request per connection, with the client certificate chosen per call."""

    def __init__(self, pki: PKI, host: str = "127.0.0.1", port: int = 0):
        self.pki, self.host, self.port = pki, host, port
        self._contexts: dict = {}

    def context(self, cert: str | None, tls: str | None = None, ca: str | None = None) -> ssl.SSLContext:
        key = (cert, tls, ca)
        if key not in self._contexts:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(ca or self.pki.ca)
            ctx.check_hostname = True
            if tls:
                ctx.minimum_version = ctx.maximum_version = _TLS_VERSIONS[tls]
            if cert:
                ctx.load_cert_chain(*self.pki.cert(cert))
            self._contexts[key] = ctx
        return self._contexts[key]

    def request(self, method: str, path: str, data=None, *, raw: bytes | str | None = None,
                cert: str | None = "unit-admin", token: str | None = None, bearer: str | None = None,
                headers: dict | None = None, tls: str | None = None, timeout: float = HTTP_TIMEOUT,
                server_hostname: str | None = None) -> Response:
        """Send one request. `data` is JSON-encoded; `raw` is sent as is. Raises ssl.SSLError /
        ConnectionError / http.client exceptions when the server refuses the connection."""
        hdrs = {}
        if token is not None:
            hdrs["X-Vault-Token"] = token
        if bearer is not None:
            hdrs["Authorization"] = f"Bearer {bearer}"
        body = None
        if data is not None:
            body = json.dumps(data).encode()
            hdrs["Content-Type"] = "application/json"
        elif raw is not None:
            body = raw.encode() if isinstance(raw, str) else raw
        if headers:
            hdrs.update(headers)
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                           context=self.context(cert, tls))
        if server_hostname:  # verify the server certificate against another name (e.g. localhost)
            conn.host = server_hostname
            conn.connect = _connect_to(conn, self.host, self.port, server_hostname, timeout)
        try:
            send_error = None
            try:
                conn.request(method, path, body=body, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError) as exc:
                # The server may answer (413) and close before reading a large body: read on.
                send_error = exc
            try:
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionError, ssl.SSLError):
                if send_error is not None:
                    raise send_error
                raise
            payload = resp.read()
            return Response(resp.status, resp.reason, resp.headers, payload, method, path)
        finally:
            conn.close()


    def request_declaring_body(self, method: str, path: str, content_length: int, *,
                               cert: str | None = "unit-admin", token: str | None = None,
                               timeout: float = HTTP_TIMEOUT) -> Response:
        """Send only the request head, declaring a body of `content_length` bytes, and read the
        answer. Deterministic where sending a body the server refuses early is a race (the server
        may close before the client has written it all)."""
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context(cert))
        try:
            conn.putrequest(method, path)
            if token is not None:
                conn.putheader("X-Vault-Token", token)
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(content_length))
            conn.endheaders()
            resp = conn.getresponse()
            payload = resp.read()
            return Response(resp.status, resp.reason, resp.headers, payload, method, path)
        finally:
            conn.close()


def _connect_to(conn, host, port, server_hostname, timeout):
    def connect():
        sock = socket.create_connection((host, port), timeout)
        conn.sock = conn._context.wrap_socket(sock, server_hostname=server_hostname)
    return connect


# --------------------------------------------------------------------------------------------
# TOML (the few types the config needs)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # 0.5, 1e-05: valid TOML floats
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r}")


def to_toml(tables: dict) -> str:
    out = []
    for table, values in tables.items():
        out.append(f"[{table}]")
        for k, v in values.items():
            if v is not None:
                out.append(f"{k} = {_toml_value(v)}")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# swtpm (COFFER_TEST_PROTECTOR=tpm)


class Swtpm:
    """One swtpm (TCP, TPM on port P, control on P+1) with its state in `directory`. It dies with
    the test process (PR_SET_PDEATHSIG) and is stopped by the owning CofferInstance's cleanup."""

    START_TIMEOUT = 10.0

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "swtpm.log"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self) -> "Swtpm":
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("swtpm is already running")
        for _attempt in range(5):
            if self.port is None:
                self.port = free_port_pair()
            if self._spawn_and_wait():
                return self
            self.port = None  # its port got taken in the meantime: pick another pair
        raise HarnessError(f"swtpm did not start after 5 attempts; its log:\n{tail(self._log())}")

    def _spawn_and_wait(self) -> bool:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["swtpm", "socket", "--tpm2", "--flags", "not-need-init,startup-clear",
                 "--server", f"type=tcp,bindaddr=127.0.0.1,port={self.port}",
                 "--ctrl", f"type=tcp,bindaddr=127.0.0.1,port={self.port + 1}",
                 "--tpmstate", f"dir={self.dir}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                if re.search(r"in use|bind", self._log(), re.I):
                    return False
                raise HarnessError(f"swtpm exited at start; its log:\n{tail(self._log())}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise HarnessError(f"swtpm not listening on 127.0.0.1:{self.port} within "
                           f"{self.START_TIMEOUT:.0f}s; its log:\n{tail(self._log())}")

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()

    def tool(self, *args: str) -> str:
        """Run a tpm2-tools command against this TPM, e.g. tool("tpm2_pcrextend", "16:sha256=..")."""
        cp = subprocess.run([args[0], "-T", self.tcti, *args[1:]], capture_output=True, text=True,
                            timeout=30, env=child_env())
        if cp.returncode != 0:
            raise HarnessError(f"{' '.join(args)} failed: {cp.stdout}{cp.stderr}")
        return cp.stdout


# --------------------------------------------------------------------------------------------
# the instance


class StartFailure:
    """What a cofferd that was expected to refuse to start did."""

    def __init__(self, returncode, stdout: str, stderr: str, timed_out: bool):
        self.returncode, self.stdout, self.stderr, self.timed_out = returncode, stdout, stderr, timed_out

    def __repr__(self) -> str:
        return (f"<cofferd exit={self.returncode} timed_out={self.timed_out}\n"
                f"stderr:\n{tail(self.stderr)}\nstdout:\n{tail(self.stdout, 10)}>")


class CofferInstance:
    """A cofferd with its own temp dir, SoftHSM token and PIN credential (or, with
    COFFER_TEST_PROTECTOR=tpm, swtpm and auth-value credential), config, db and port.

    Typical use (tests go through CofferTestCase.new_instance, which registers the cleanup):
        inst = CofferInstance(pki); inst.setup(); inst.start(); ...; inst.cleanup()
    """

    def __init__(self, pki: PKI, *, name: str = "coffer", crl: str | None = None,
                 max_request_bytes: int = 65536, config_overrides: dict | None = None):
        self.pki = pki
        self.dir = Path(tempfile.mkdtemp(prefix=f"coffer-it-{name}-"))
        _LIVE.add(self)
        self.softhsm_dir = self.dir / "softhsm"
        self.softhsm_conf = self.softhsm_dir / "softhsm2.conf"
        self.cred_dir = self.dir / "credentials"
        self.protector = PROTECTOR
        # The credential cofferd needs besides its config: the PKCS#11 PIN, or the TPM auth value.
        # Tests treat both the same (write_pin, pin_file, pin).
        self.pin_file = self.cred_dir / (TPM_AUTH_CREDENTIAL if TPM else PIN_CREDENTIAL)
        self.swtpm: Swtpm | None = Swtpm(self.dir / "swtpm") if TPM else None
        self.key_blob_file = self.dir / "data" / "tpm-master-key.json"
        self.config_path = self.dir / "cofferd.toml"
        self.db_path = self.dir / "data" / "coffer.db"
        self.log_path = self.dir / "cofferd.log"
        self.pin = secrets.token_hex(12)
        self.so_pin = secrets.token_hex(12)
        self.crl = crl
        self.max_request_bytes = max_request_bytes
        self.config_overrides = config_overrides or {}
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.root_token: str | None = None
        self.init_result: dict | None = None
        self.last_exit = None
        self._log_offset = 0
        self.client = Client(pki)
        self._cleaned = False

    # -- context manager ----------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    # -- setup ----------------------------------------------------------------------------------
    def setup(self, init: bool = True) -> "CofferInstance":
        if self.swtpm is not None:
            self.swtpm.start()
        else:
            self.init_token()
        self.write_pin()
        self.port = free_port()
        self.write_config()
        if init:
            self.init()
        return self

    def env(self, credentials: bool = True, **extra) -> dict:
        env = child_env(SOFTHSM2_CONF=str(self.softhsm_conf))
        if self.swtpm is not None:
            env["TSS2_LOG"] = "all+none"  # tpm2-tss would log its own errors to stderr
        if credentials:
            env["CREDENTIALS_DIRECTORY"] = str(self.cred_dir)
        env.update(extra)
        return env

    def init_token(self) -> None:
        (self.softhsm_dir / "tokens").mkdir(parents=True, exist_ok=True)
        self.softhsm_conf.write_text(
            f"directories.tokendir = {self.softhsm_dir / 'tokens'}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n")
        cp = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
                             "--so-pin", self.so_pin, "--pin", self.pin],
                            capture_output=True, text=True, env=self.env(), timeout=60)
        if cp.returncode != 0:
            raise HarnessError(f"softhsm2-util --init-token failed:\n{cp.stdout}\n{cp.stderr}")

    def write_pin(self, pin: str | None = None) -> None:
        """(Re)write the PIN credential: 0600 in a 0700 directory, no trailing newline."""
        self.cred_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.cred_dir, 0o700)
        fd = os.open(self.pin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.pin if pin is None else pin)
        os.chmod(self.pin_file, 0o600)

    def config(self, **overrides) -> dict:
        """The config as {table: {key: value}}; overrides are {table: {key: value}} merges."""
        self.db_path.parent.mkdir(exist_ok=True)
        cfg = {
            "listener": {
                "address": "127.0.0.1",
                "port": self.port,
                "tls_cert_file": str(self.pki.dir / "server.crt"),
                "tls_key_file": str(self.pki.dir / "server.key"),
                "client_ca_file": self.pki.ca,
                "crl_file": self.crl,
                "max_request_bytes": self.max_request_bytes,
            },
            "storage": {"path": str(self.db_path)},
            "protector": {"type": "pkcs11"},
            "protector.pkcs11": {
                "module": "softhsm2",
                "token_label": TOKEN_LABEL,
                "key_label": MASTER_KEY_LABEL,
                "pin_credential": PIN_CREDENTIAL,
            },
            "tokens": {"default_ttl": "15m", "max_ttl": "24h"},
            "log": {"level": "info"},
        }
        if self.swtpm is not None:
            cfg["protector"] = {"type": "tpm"}
            cfg["protector.tpm"] = {
                "tcti": self.swtpm.tcti,
                "pcrs": list(TPM_PCRS),
                "key_blob_file": str(self.key_blob_file),
                "key_id": MASTER_KEY_LABEL,
                "auth_credential": TPM_AUTH_CREDENTIAL,
            }
        for source in (self.config_overrides, overrides):
            for table, values in source.items():
                cfg.setdefault(table, {}).update(values)
        return cfg

    def write_config(self, path: Path | None = None, **overrides) -> Path:
        path = Path(path or self.config_path)
        path.write_text("# written by tests/integration/harness.py\n" + to_toml(self.config(**overrides)))
        return path

    def run_cofferctl(self, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(COFFERCTL), *args], capture_output=True, text=True,
                              env=env if env is not None else self.env(), timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=self.dir)

    def init(self) -> dict:
        """cofferctl init --format json; the root token stays in memory only."""
        cp = self.run_cofferctl("init", "--config", str(self.config_path), "--format", "json")
        if cp.returncode != 0:
            raise HarnessError(f"cofferctl init failed (exit {cp.returncode}):\n{cp.stderr}\n{cp.stdout}")
        try:
            doc = json.loads(cp.stdout)
            token = doc["root_token"]
        except (ValueError, KeyError, TypeError):
            raise HarnessError(f"cofferctl init --format json printed no JSON root_token:\n"
                               f"stdout: {cp.stdout!r}\nstderr: {cp.stderr}") from None
        self.init_result, self.root_token = doc, token
        return doc

    # -- running ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, since_start: bool = False) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        if since_start:
            data = data[self._log_offset:]
        return data.decode("utf-8", "replace")

    def _spawn(self) -> None:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(COFFERD), "--config", str(self.config_path)], env=self.env(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir,
                preexec_fn=_die_with_parent)

    def start(self, timeout: float = READY_TIMEOUT) -> "CofferInstance":
        """Start cofferd and wait until GET /v1/sys/health answers 200 over mTLS. If the port
        was taken in the meantime (the daemon dies saying so), pick another and try again."""
        if self.running:
            raise HarnessError("cofferd is already running")
        if self.port is None:
            self.port = free_port()
            self.write_config()
        for attempt in range(5):
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except _PortTaken:
                self.port = free_port()
                self.write_config()
        raise HarnessError(f"cofferd could not bind a free port after 5 attempts:\n{tail(self.log_text())}")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        self.client.port = self.port
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                log = self.log_text(since_start=True)
                self.last_exit, self.proc = rc, None
                if re.search(r"address already in use|EADDRINUSE|in use|failed to bind", log, re.I):
                    raise _PortTaken()
                raise HarnessError(f"cofferd exited with {rc} before it was ready; its log:\n{tail(log)}")
            try:
                r = self.request("GET", "/v1/sys/health", cert="unit-admin", timeout=2)
                if r.status == 200:
                    time.sleep(0.05)
                    if self.proc.poll() is None:
                        return
                    continue
                last = repr(r)
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        log = self.log_text(since_start=True)
        self.stop()
        raise HarnessError(f"cofferd not ready within {timeout:.0f}s on 127.0.0.1:{self.port} "
                           f"(last health probe: {last}); its log:\n{tail(log)}")

    def stop(self, timeout: float = STOP_TIMEOUT):
        """SIGTERM, wait, SIGKILL. Returns the exit status (negative = killed by that signal)."""
        if self.proc is None:
            return self.last_exit
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"harness: cofferd (pid {proc.pid}) ignored SIGTERM for {timeout:.0f}s; SIGKILL",
                      file=sys.stderr)
                proc.kill()
                proc.wait()
        self.last_exit = proc.returncode
        if VERBOSE or proc.returncode != 0:
            print(f"harness: cofferd {self.dir} exited {proc.returncode}; log tail:\n"
                  f"{tail(self.log_text(since_start=True), 200 if VERBOSE else 20)}", file=sys.stderr)
        return self.last_exit

    def restart(self) -> "CofferInstance":
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        try:
            self.stop()
        finally:
            try:
                if self.swtpm is not None:
                    self.swtpm.stop()
            finally:
                _LIVE.discard(self)
            if KEEP:
                print(f"harness: kept {self.dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def run_cofferd_expecting_failure(self, config: Path | None = None, timeout: float = READY_TIMEOUT,
                                      env: dict | None = None, beside_running: bool = False) -> StartFailure:
        """Run cofferd in the foreground and collect its exit code and stderr; kill it if it is
        still running after `timeout` (timed_out=True: it did not refuse to start).
        beside_running: the instance may be running (give a config with another port)."""
        if self.running and not beside_running:
            raise HarnessError("stop the instance first: this would fight over its port")
        proc = subprocess.Popen([str(COFFERD), "--config", str(config or self.config_path)],
                                env=env if env is not None else self.env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.dir,
                                preexec_fn=_die_with_parent)
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            timed_out = True
        return StartFailure(proc.returncode, out.decode("utf-8", "replace"),
                            err.decode("utf-8", "replace"), timed_out)

    # -- HTTP ---------------------------------------------------------------------------------------
    def request(self, method: str, path: str, data=None, **kw) -> Response:
        self.client.port = self.port
        return self.client.request(method, path, data, **kw)

    def request_declaring_body(self, method: str, path: str, content_length: int, **kw) -> Response:
        self.client.port = self.port
        return self.client.request_declaring_body(method, path, content_length, **kw)

    def root(self, method: str, path: str, data=None, **kw) -> Response:
        """A request with the root token over the unit-admin certificate."""
        kw.setdefault("cert", "unit-admin")
        return self.request(method, path, data, token=self.root_token, **kw)

    def expect(self, resp: Response, status: int) -> Response:
        if resp.status != status:
            raise HarnessError(f"expected {status}, got {resp!r}\ncofferd log:\n{tail(self.log_text(), 20)}")
        return resp

    def put_policy(self, name: str, hcl: str) -> None:
        self.expect(self.root("PUT", f"/v1/sys/policies/acl/{name}", {"policy": hcl}), 204)

    def put_cert_role(self, name: str, *, allowed_common_names=("web01",), policies=("web",),
                      ttl: str | None = "15m", ca: str = "ca", **extra) -> None:
        body = {"certificate": self.pki.pem(ca), "allowed_common_names": list(allowed_common_names),
                "token_policies": list(policies)}
        if ttl is not None:
            body["token_ttl"] = ttl
        body.update(extra)
        self.expect(self.root("POST", f"/v1/auth/cert/certs/{name}", body), 204)

    def write_secret(self, path: str, data: dict) -> None:
        self.expect(self.root("PUT", f"/v1/secret/{path}", data), 204)

    def login(self, cert: str = "unit-web", role: str | None = "web") -> dict:
        """Cert login; returns the `auth` block (raises unless 200)."""
        body = {"name": role} if role is not None else {}
        r = self.expect(self.request("POST", "/v1/auth/cert/login", body, cert=cert), 200)
        return r.json["auth"]

    # -- storage ----------------------------------------------------------------------------------
    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.db_path), timeout=10, isolation_level=None)

    def storage_files(self) -> dict:
        """The sqlite file and its companions that exist now: {suffix: bytes}."""
        out = {}
        for suffix in ("", "-wal", "-shm", "-journal"):
            p = Path(str(self.db_path) + suffix)
            if p.exists():
                out[p.name] = p.read_bytes()
        return out

    def sealed(self, path: str, mount: str = "secret/") -> bytes:
        with _closing(self.db()) as db:
            rows = db.execute("SELECT sealed FROM secrets WHERE mount = ? AND path = ?", (mount, path)).fetchall()
        if len(rows) != 1:
            raise HarnessError(f"expected one row in secrets for ({mount!r}, {path!r}), found {len(rows)}")
        return bytes(rows[0][0])

    def set_sealed(self, path: str, blob: bytes, mount: str = "secret/") -> None:
        with _closing(self.db()) as db:
            cur = db.execute("UPDATE secrets SET sealed = ? WHERE mount = ? AND path = ?", (blob, mount, path))
            if cur.rowcount != 1:
                raise HarnessError(f"UPDATE secrets for ({mount!r}, {path!r}) changed {cur.rowcount} rows")

    def flip_sealed_byte(self, path: str, index: int, mount: str = "secret/") -> None:
        blob = bytearray(self.sealed(path, mount))
        blob[index] ^= 0x01
        self.set_sealed(path, bytes(blob), mount)

    def swap_sealed(self, a: str, b: str, mount: str = "secret/") -> None:
        sa, sb = self.sealed(a, mount), self.sealed(b, mount)
        self.set_sealed(a, sb, mount)
        self.set_sealed(b, sa, mount)

    # -- the token ----------------------------------------------------------------------------------
    def pkcs11_tool(self, *args: str, pin: str | None = None) -> subprocess.CompletedProcess:
        if self.swtpm is not None:
            raise HarnessError("pkcs11-tool on a TPM instance: mark the test @pkcs11_only(...) "
                               "or give it a TPM branch")
        cmd = ["pkcs11-tool", "--module", softhsm_module(), "--token-label", TOKEN_LABEL]
        if pin is not None:
            cmd += ["--login", "--pin", pin]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, env=self.env(), timeout=60)

    def token_objects(self) -> str:
        cp = self.pkcs11_tool("--list-objects", pin=self.pin)
        if cp.returncode != 0:
            raise HarnessError(f"pkcs11-tool --list-objects failed:\n{cp.stdout}\n{cp.stderr}")
        return cp.stdout

    def delete_master_key(self, label: str = MASTER_KEY_LABEL) -> None:
        """Make the master key unavailable: delete it from the token, or (TPM) delete the
        key-blob file (the TPM object cannot be loaded without it)."""
        if self.swtpm is not None:
            if not self.key_blob_file.exists():
                raise HarnessError(f"no key-blob file {self.key_blob_file} to delete")
            self.key_blob_file.unlink()
            return
        cp = self.pkcs11_tool("--delete-object", "--type", "secrkey", "--label", label, pin=self.pin)
        if cp.returncode != 0:
            raise HarnessError(f"pkcs11-tool --delete-object failed:\n{cp.stdout}\n{cp.stderr}")
        if f"label:      {label}" in self.token_objects():
            raise HarnessError(f"{label} still in the token after --delete-object")


class _PortTaken(Exception):
    pass


class _closing:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()


# --------------------------------------------------------------------------------------------
# unittest glue


class CofferTestCase(unittest.TestCase):
    """Base class: one PKI per test class; instances that are always cleaned up."""

    pki: PKI = None
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_binaries()
        pki_dir = tempfile.mkdtemp(prefix="coffer-it-pki-")
        if not KEEP:
            cls.addClassCleanup(shutil.rmtree, pki_dir, True)
        cls.pki = PKI.create(Path(pki_dir) / "pki")

    @classmethod
    def class_instance(cls, start: bool = True, **kw) -> CofferInstance:
        """An initialised (and started) instance shared by the class."""
        inst = CofferInstance(cls.pki, name=cls.__name__.lower(), **kw)
        cls.addClassCleanup(inst.cleanup)
        inst.setup()
        if start:
            inst.start()
        return inst

    def new_instance(self, start: bool = True, init: bool = True, **kw) -> CofferInstance:
        """An instance for this test only."""
        inst = CofferInstance(self.pki, name=self._testMethodName.lower(), **kw)
        self.addCleanup(inst.cleanup)
        inst.setup(init=init)
        if start:
            inst.start()
        return inst

    # -- assertions on Vault's wire shapes -----------------------------------------------------------
    def assertStatus(self, resp: Response, status: int, msg: str = "") -> Response:
        self.assertEqual(resp.status, status, f"{msg} {resp!r}".strip())
        return resp

    def assertJSONError(self, resp: Response, status: int | None = None) -> list:
        """A 4xx/5xx with Content-Type application/json and {"errors": [str, ...]}."""
        if status is not None:
            self.assertStatus(resp, status)
        else:
            self.assertGreaterEqual(resp.status, 400, repr(resp))
        ctype = (resp.header("Content-Type") or "").split(";")[0].strip()
        self.assertEqual(ctype, "application/json", f"error body must be JSON: {resp!r}")
        self.assertIsInstance(resp.json, dict, repr(resp))
        errors = resp.json.get("errors")
        self.assertIsInstance(errors, list, repr(resp))
        for e in errors:
            self.assertIsInstance(e, str, repr(resp))
        return errors

    def assertPermissionDenied(self, resp: Response) -> None:
        errors = self.assertJSONError(resp, 403)
        self.assertTrue(any("permission denied" in e for e in errors),
                        f"403 without 'permission denied': {resp!r}")

    def assertNotFoundEmpty(self, resp: Response) -> None:
        """Vault's 404 for a missing secret or an empty list: exactly {"errors":[]}."""
        self.assertStatus(resp, 404)
        self.assertEqual(resp.json, {"errors": []}, repr(resp))

    def assertNoContent(self, resp: Response) -> None:
        self.assertStatus(resp, 204)
        self.assertEqual(resp.body, b"", repr(resp))

    def assertEnvelope(self, resp: Response, status: int = 200) -> dict:
        """Vault's logical response envelope (sdk/logical.HTTPResponse)."""
        self.assertStatus(resp, status)
        ctype = (resp.header("Content-Type") or "").split(";")[0].strip()
        self.assertEqual(ctype, "application/json", repr(resp))
        body = resp.json
        self.assertIsInstance(body, dict, repr(resp))
        for key in ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info",
                    "warnings", "auth"):
            self.assertIn(key, body, f"envelope lacks {key!r}: {resp!r}")
        self.assertIsInstance(body["request_id"], str)
        self.assertIsInstance(body["lease_id"], str)
        self.assertIsInstance(body["renewable"], bool)
        self.assertIsInstance(body["lease_duration"], int)
        self.assertIsNone(body["wrap_info"], repr(resp))
        return body

    def assertAuthBlock(self, auth: dict) -> None:
        """The `auth` block of a login / token create / renew (Vault's HTTPAuth)."""
        self.assertIsInstance(auth, dict)
        for key in ("client_token", "accessor", "policies", "token_policies", "lease_duration",
                    "renewable", "metadata"):
            self.assertIn(key, auth, f"auth lacks {key!r}: {auth!r}")
        self.assertIsInstance(auth["client_token"], str)
        self.assertTrue(auth["client_token"].startswith("hvs."), auth["client_token"][:8])
        self.assertGreater(len(auth["client_token"]), 20)
        self.assertIsInstance(auth["accessor"], str)
        self.assertTrue(auth["accessor"])
        self.assertNotEqual(auth["accessor"], auth["client_token"])
        self.assertIsInstance(auth["policies"], list)
        self.assertIsInstance(auth["token_policies"], list)
        self.assertIsInstance(auth["lease_duration"], int)
        self.assertIsInstance(auth["renewable"], bool)
        self.assertIsInstance(auth["metadata"], (dict, type(None)))

    def assertSecurityHeaders(self, resp: Response) -> None:
        h = resp.headers
        self.assertIn("no-store", (h.get("Cache-Control") or ""), f"Cache-Control on {resp!r}")
        self.assertEqual(h.get("X-Content-Type-Options"), "nosniff", f"X-Content-Type-Options on {resp!r}")
        self.assertIn("default-src 'none'", (h.get("Content-Security-Policy") or ""), f"CSP on {resp!r}")
        self.assertRegex(h.get("Strict-Transport-Security") or "", r"max-age=\d+", f"HSTS on {resp!r}")


def setup_web(inst: CofferInstance) -> None:
    """The standard fixture: policy web (read/list secret/app/*) and cert role web (CN web01)."""
    inst.put_policy("web", 'path "secret/app/*" { capabilities = ["read", "list"] }')
    inst.put_cert_role("web", allowed_common_names=["web01"], policies=["web"], ttl="15m")
