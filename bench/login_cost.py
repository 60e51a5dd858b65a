"""Login cost: cert login against AppRole login (one unlimited-use secret ID, and fresh single-use
secret IDs generated beforehand), over one keep-alive mTLS connection per worker, against a
running cofferd; with cofferd's CPU time per login (utime+stime from /proc/<pid>/stat).

  /usr/bin/python3 bench/login_cost.py <port> <pki dir> <root token file> <cofferd pid> [n] [workers]

Needs: the PKI of tests/support/make-pki.sh (unit-web's certificate), a policy "web" and a cert
role "web" for CN web01 (scripts/dev.sh makes all of these), and the rate limits and lockout off
in cofferd's config ([rate_limit] enabled = false, [lockout] enabled = false): the loop logs in
far faster than the login limit allows. It creates the AppRoles bench-unlimited and bench-once.
The machine is shared and noisy: compare the rows, not the absolute numbers."""
import http.client, json, os, ssl, sys, threading, time

if len(sys.argv) < 5:
    sys.exit(__doc__)
port, pki, root_file, PID = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
N = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
W = int(sys.argv[6]) if len(sys.argv) > 6 else 8
root = open(root_file).read().strip()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(f"{pki}/ca.crt")
ctx.load_cert_chain(f"{pki}/unit-web.crt", f"{pki}/unit-web.key")

def conn():
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    c.connect()
    return c

def call(c, method, path, body=None, token=None):
    h = {"Content-Type": "application/json"}
    if token: h["X-Vault-Token"] = token
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    return r.status, data

admin = conn()
call(admin, "POST", "/v1/auth/approle/role/bench-unlimited", {"token_policies": ["web"]}, root)
call(admin, "POST", "/v1/auth/approle/role/bench-once", {"token_policies": ["web"], "secret_id_num_uses": 1}, root)
rid_u = json.loads(call(admin, "GET", "/v1/auth/approle/role/bench-unlimited/role-id", token=root)[1])["data"]["role_id"]
rid_o = json.loads(call(admin, "GET", "/v1/auth/approle/role/bench-once/role-id", token=root)[1])["data"]["role_id"]
sid_u = json.loads(call(admin, "POST", "/v1/auth/approle/role/bench-unlimited/secret-id", {}, root)[1])["data"]["secret_id"]

def once_ids(n):
    gen = conn()  # a fresh connection: cofferd closes idle ones
    t0 = time.perf_counter()
    ids = [json.loads(call(gen, "POST", "/v1/auth/approle/role/bench-once/secret-id", {}, root)[1])["data"]["secret_id"] for _ in range(n)]
    return ids, (time.perf_counter() - t0) / n

def cpu():
    f = open(f"/proc/{PID}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def run(name, make_body, path, n, workers):
    lat = []
    lock = threading.Lock()
    bodies = [make_body(i) for i in range(n)]
    def worker(k):
        c = conn()
        mine = []
        for i in range(k, n, workers):
            t = time.perf_counter()
            st, data = call(c, "POST", path, bodies[i])
            mine.append(time.perf_counter() - t)
            assert st == 200, (name, st, data[:200])
        with lock:
            lat.extend(mine)
    c0 = cpu()
    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    for t in ths: t.start()
    for t in ths: t.join()
    wall = time.perf_counter() - t0
    cpu_ms = (cpu() - c0) * 1000 / n
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print(f"{name:28s} workers={workers:2d} n={n:5d}  {n / wall:7.0f} logins/s   p50 {p(0.5):6.2f} ms  p99 {p(0.99):6.2f} ms  cofferd CPU {cpu_ms:5.2f} ms/login")

for workers in (1, W):
    run("cert login", lambda i: {"name": "web"}, "/v1/auth/cert/login", N, workers)
    run("approle login (unlimited)", lambda i: {"role_id": rid_u, "secret_id": sid_u}, "/v1/auth/approle/login", N, workers)
    ids, gen = once_ids(N)
    run("approle login (single-use)", lambda i, ids=ids: {"role_id": rid_o, "secret_id": ids[i]}, "/v1/auth/approle/login", N, workers)
    print(f"{'  (secret-id generation)':28s} workers= 1  {1 / gen:7.0f} ids/s      mean {gen * 1000:6.2f} ms")
