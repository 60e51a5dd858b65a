#!/usr/bin/env bash
# bench/run.sh: the whole benchmark of issue 7 in one command (bench/README.md).
#
#   bash bench/run.sh
#
# Builds (scripts/build.sh -> build/), sets up a throw-away coffer instance (SoftHSM token in a
# temp dir, PKI from tests/support/make-pki.sh, cofferctl init, cofferd on a free loopback port,
# a policy, a cert role and a ~100 byte secret), starts the two references (nginx with mTLS
# required and session tickets off, serving coffer's own read answer as a static file; and
# bench/bare_mhd), runs the scenarios against each with the same client settings, measures
# server CPU per operation from /proc/<pid>/stat and counts PKCS#11 calls made by cofferd during
# the read scenario (uprobes on libsofthsm2's C_* functions, when perf can place them), then
# prints the table. Everything it starts is stopped by the EXIT trap.
#
# Knobs (environment):
#   BENCH_DURATION=10     seconds per scenario per server
#   BENCH_CONNECTIONS=64  client connections
#   BENCH_THREADS=2       client threads
#   BENCH_PROFILE=0       1: also profile cofferd under a load (perf, cpu-clock) and print
#                         the top symbols
#   BENCH_PROFILE_SCENARIO=read  the load to profile under (read, fresh, resume, login, write, mixed)
#   BENCH_SCENARIOS="read fresh resume login write mixed audited"  the scenarios to run
#                         (audited = read and write against the audited instance)
#   BENCH_TICKETS=1h      cofferd's [listener] tls_ticket_lifetime ("0s": no session tickets)
#   BENCH_MICRO=1         0: skip the Google Benchmark micro-benchmarks
#   COFFER_BUILD_DIR      use this build instead of running scripts/build.sh (build/)
#   BENCH_KEEP=1          keep the temp directory (logs, config, db)
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${BENCH_DURATION:-10}"
CONNS="${BENCH_CONNECTIONS:-64}"
CLIENT_THREADS="${BENCH_THREADS:-2}"
SERVER_THREADS="$(nproc)"
PROFILE="${BENCH_PROFILE:-0}"
PROFILE_SCENARIO="${BENCH_PROFILE_SCENARIO:-read}"
MICRO="${BENCH_MICRO:-1}"
SCENARIOS=" ${BENCH_SCENARIOS:-read fresh resume login write mixed audited} "
SOFTHSM_LIB=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }
case "$PROFILE_SCENARIO" in read|fresh|resume|login|write|mixed) ;; *) die "BENCH_PROFILE_SCENARIO: read, fresh, resume, login, write or mixed, not '$PROFILE_SCENARIO'";; esac
for s in $SCENARIOS; do
  case "$s" in read|fresh|resume|login|write|mixed|audited) ;; *) die "BENCH_SCENARIOS: read, fresh, resume, login, write, mixed, audited; not '$s'";; esac
done

# shellcheck source=bench/lib.sh
source "$SRC/bench/lib.sh"
bench_build
BARE="$BUILD/bench/bare_mhd"
MICROBIN="$BUILD/bench/micro_bench"
for b in "$COFFERD" "$COFFERCTL" "$LOAD" "$BARE"; do [[ -x "$b" ]] || die "not built: $b"; done
for t in nginx softhsm2-util openssl curl python3; do
  command -v "$t" >/dev/null || die "$t not installed (run: bash scripts/install-deps.sh)"
done

TMP="$(mktemp -d /tmp/coffer-bench.XXXXXX)"
PIDS=()
PROBES_ADDED=0
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $PROBES_ADDED -eq 1 ]]; then
    perf probe -q -d 'probe_libsofthsm2:*' >/dev/null 2>&1 || true
  fi
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# utime+stime (clock ticks) of a process and its direct children (nginx's workers).
cpu_ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [[ -r /proc/$p/stat ]] || continue
    local rest
    rest="$(sed 's/^.*) //' "/proc/$p/stat")"
    # after "pid (comm) ": state is field 1, utime field 12, stime field 13
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# ---------------------------------------------------------------------------------------------
# PKI (ECDSA P-256 everywhere: check the server key, an RSA key would cost nginx 0.3 ms a handshake)
PKI="$TMP/pki"
bash "$SRC/tests/support/make-pki.sh" "$PKI"
openssl pkey -in "$PKI/server.key" -noout -text 2>/dev/null | grep -q 'NIST CURVE: P-256' \
  || die "server key is not ECDSA P-256"

# ---------------------------------------------------------------------------------------------
# coffer: SoftHSM token, PIN credential, config, init, start (as tests/integration/harness.py)
log "setting up coffer in $TMP"
mkdir -p "$TMP/data"
bench_softhsm_token
COFFER_PORT="$(free_port)"
# Same threads as the references; tokens that outlive the run.
bench_base_config "$TMP/cofferd.toml" "$COFFER_PORT" "$TMP/data/coffer.db" \
  "threads = $SERVER_THREADS
tls_ticket_lifetime = \"${BENCH_TICKETS:-1h}\""
printf '\n[tokens]\ndefault_ttl = "1h"\nmax_ttl = "24h"\n' >>"$TMP/cofferd.toml"
# The load comes from one certificate and one address, far beyond what a unit does: limits high
# enough never to refuse, so the runs measure the server with the limiter's cost included.
bench_raise_limits "$TMP/cofferd.toml" login read write
ROOT_TOKEN="$(bench_init "$TMP/cofferd.toml")"

(cd "$TMP" && exec "$COFFERD" --config "$TMP/cofferd.toml" >"$TMP/cofferd.log" 2>&1) &
COFFER_PID=$!
PIDS+=("$COFFER_PID")
wait_https "$COFFER_PORT" cofferd "$COFFER_PID"

api() {  # <method> <path> <json body> [token]
  curl -sS -o "$TMP/api.out" -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt" \
    --cert "$PKI/unit-admin.crt" --key "$PKI/unit-admin.key" -X "$1" \
    -H "X-Vault-Token: ${4:-$ROOT_TOKEN}" -H 'Content-Type: application/json' \
    --data "$3" "https://127.0.0.1:$COFFER_PORT$2"
}
expect() {  # <status> <method> <path> <body>
  local got
  got="$(api "$2" "$3" "$4")"
  [[ "$got" == "$1" ]] || die "$2 $3: expected $1, got $got: $(head -c 400 "$TMP/api.out")"
}
POLICY='path "secret/bench/*" { capabilities = ["create", "read", "update", "list"] }'
expect 204 PUT /v1/sys/policies/acl/web "$(python3 -c 'import json,sys; print(json.dumps({"policy": sys.argv[1]}))' "$POLICY")"
expect 204 POST /v1/auth/cert/certs/web "$(python3 -c 'import json,sys; print(json.dumps({"certificate": open(sys.argv[1]).read(), "allowed_common_names": ["web01"], "token_policies": ["web"], "token_ttl": "1h"}))' "$PKI/ca.crt")"
# The secret: about 100 bytes of JSON.
expect 204 PUT /v1/secret/bench/app \
  '{"username":"svc-app","password":"c0ffee-0123456789abcdef0123456789abcdef","url":"db.internal"}'
# A token from cert login (policy "web", bound to unit-web's certificate): the reads use it.
code="$(curl -sS -o "$TMP/login.json" -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt" \
  --cert "$PKI/unit-web.crt" --key "$PKI/unit-web.key" -X POST --data '{"name":"web"}' \
  "https://127.0.0.1:$COFFER_PORT/v1/auth/cert/login")"
[[ "$code" == 200 ]] || die "cert login: $code $(head -c 400 "$TMP/login.json")"
TOKEN="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["auth"]["client_token"])' "$TMP/login.json")"
code="$(curl -sS -o "$TMP/body.json" -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt" \
  --cert "$PKI/unit-web.crt" --key "$PKI/unit-web.key" -H "X-Vault-Token: $TOKEN" \
  "https://127.0.0.1:$COFFER_PORT/v1/secret/bench/app")"
[[ "$code" == 200 ]] || die "read: $code $(head -c 400 "$TMP/body.json")"
BODY_BYTES="$(stat -c %s "$TMP/body.json")"

# A second cofferd with the audit log on (group commit), so the cost of auditing is measured in
# the same run ("audited" rows); it idles while others are measured. cofferd holds its database
# alone (daemon/instance_lock.h), so the audited one gets a copy, made with the first stopped
# (sqlite checkpoints the WAL into the file on close): same keyring, policy, role, secret, token.
stop_pid "$COFFER_PID" cofferd
mkdir -p "$TMP/data-audited"
cp "$TMP/data/coffer.db" "$TMP/data-audited/coffer.db"
[[ ! -s "$TMP/data/coffer.db-wal" ]] || die "the WAL was not checkpointed at close"
(cd "$TMP" && exec "$COFFERD" --config "$TMP/cofferd.toml" >>"$TMP/cofferd.log" 2>&1) &
COFFER_PID=$!
PIDS+=("$COFFER_PID")
wait_https "$COFFER_PORT" cofferd "$COFFER_PID"

AUDIT_PORT="$(free_port)"
sed -e "s/^port = $COFFER_PORT\$/port = $AUDIT_PORT/" -e "s|$TMP/data/coffer.db|$TMP/data-audited/coffer.db|" \
  "$TMP/cofferd.toml" >"$TMP/cofferd-audited.toml"
printf '\n[audit]\npath = "%s"\nfsync = "group"\n' "$TMP/audit.log" >>"$TMP/cofferd-audited.toml"
(cd "$TMP" && exec "$COFFERD" --config "$TMP/cofferd-audited.toml" >"$TMP/cofferd-audited.log" 2>&1) &
AUDIT_PID=$!
PIDS+=("$AUDIT_PID")
wait_https "$AUDIT_PORT" cofferd-audited "$AUDIT_PID"
log "coffer ready on 127.0.0.1:$COFFER_PORT (pid $COFFER_PID); read answer is $BODY_BYTES bytes"

# ---------------------------------------------------------------------------------------------
# nginx: same certificates, mTLS required, no tickets, no session cache, the same body
NGINX_PORT="$(free_port)"
mkdir -p "$TMP/nginx/www" "$TMP/nginx/tmp"
cp "$TMP/body.json" "$TMP/nginx/www/body.json"
cat >"$TMP/nginx/nginx.conf" <<EOF
user root;
daemon off;
master_process on;
worker_processes $SERVER_THREADS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/tmp/body;
  proxy_temp_path $TMP/nginx/tmp/proxy;
  fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
  scgi_temp_path $TMP/nginx/tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $PKI/server.crt;
    ssl_certificate_key $PKI/server.key;
    ssl_client_certificate $PKI/ca.crt;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;
    default_type application/json;
    root $TMP/nginx/www;
    location / { try_files /body.json =404; }
  }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" >"$TMP/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_https "$NGINX_PORT" nginx "$NGINX_PID"

# ---------------------------------------------------------------------------------------------
# bare libmicrohttpd: same threads, same body
BARE_PORT="$(free_port)"
"$BARE" --port "$BARE_PORT" --cert "$PKI/server.crt" --key "$PKI/server.key" --ca "$PKI/ca.crt" \
  --body "$TMP/body.json" --threads "$SERVER_THREADS" >"$TMP/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
wait_https "$BARE_PORT" bare_mhd "$BARE_PID"
log "nginx on :$NGINX_PORT (pid $NGINX_PID), bare_mhd on :$BARE_PORT (pid $BARE_PID)"

# ---------------------------------------------------------------------------------------------
# PKCS#11 call counter: uprobes on every C_* entry point of libsofthsm2, counted for cofferd.
P11_EVENTS=""
if command -v perf >/dev/null && [[ -r "$SOFTHSM_LIB" ]]; then
  if perf probe -l 2>/dev/null | grep -q '^ *probe_libsofthsm2:'; then
    log "PKCS#11 probes already exist (another run?): using them as they are"
    P11_EVENTS='probe_libsofthsm2:*'
  elif perf probe -q -x "$SOFTHSM_LIB" -a 'C_*' >/dev/null 2>&1; then
    PROBES_ADDED=1
    P11_EVENTS='probe_libsofthsm2:*'
  fi
fi
[[ -n "$P11_EVENTS" ]] || log "perf uprobes unavailable: no PKCS#11 counter"
if [[ -n "$P11_EVENTS" ]]; then
  # Positive control: the same probes do count a process that talks to the token.
  perf stat -x, -e "$P11_EVENTS" -o "$TMP/p11-control.csv" -- softhsm2-util --show-slots >/dev/null 2>&1 || true
  log "PKCS#11 probe control: softhsm2-util --show-slots made $(awk -F, '$1 ~ /^[0-9]+$/ { s += $1 } END { print s + 0 }' "$TMP/p11-control.csv" 2>/dev/null) C_* calls"
fi

RESULTS="$TMP/results.txt"
: >"$RESULTS"

# run_one <server label> <pid> <port> <scenario> [count PKCS#11 calls: 1]
run_one() {
  local label="$1" pid="$2" port="$3" scenario="$4" count_p11="${5:-0}"
  local t0 t1 line p11=-1 perfpid=""
  if [[ "$count_p11" == 1 && -n "$P11_EVENTS" ]]; then
    perf stat -x, -e "$P11_EVENTS" -p "$pid" -o "$TMP/p11.csv" -- sleep "$((DURATION + 1))" \
      >/dev/null 2>&1 &
    perfpid=$!
    sleep 0.3
  fi
  t0="$(cpu_ticks "$pid")"
  line="$("$LOAD" --port "$port" --ca "$PKI/ca.crt" --cert "$PKI/unit-web.crt" \
    --key "$PKI/unit-web.key" --token "$TOKEN" --path /v1/secret/bench/app --role web \
    --scenario "$scenario" --connections "$CONNS" --threads "$CLIENT_THREADS" \
    --duration "$DURATION" --label "$label-$scenario" 2>>"$TMP/load-errors.log" | grep '^RESULT ')"
  t1="$(cpu_ticks "$pid")"
  if [[ -n "$perfpid" ]]; then
    wait "$perfpid" 2>/dev/null || true
    p11="$(awk -F, '$1 ~ /^[0-9]+$/ { s += $1 } END { print s + 0 }' "$TMP/p11.csv" 2>/dev/null || echo -1)"
  fi
  echo "$line server=$label cpu_ticks=$((t1 - t0)) p11_calls=$p11" | tee -a "$RESULTS" >&2
}

log "running: $CONNS connections, $CLIENT_THREADS client threads, $SERVER_THREADS server threads, ${DURATION}s each"
wanted() { [[ "$SCENARIOS" == *" $1 "* ]]; }
for scenario in read fresh; do
  wanted "$scenario" || continue
  run_one coffer "$COFFER_PID" "$COFFER_PORT" "$scenario" 1
  run_one nginx "$NGINX_PID" "$NGINX_PORT" "$scenario"
  run_one bare "$BARE_PID" "$BARE_PORT" "$scenario"
done
# resume: coffer only (the references issue no tickets: nginx is set up without them, and
# libmicrohttpd enables none by itself).
for scenario in resume login write mixed; do
  wanted "$scenario" || continue
  run_one coffer "$COFFER_PID" "$COFFER_PORT" "$scenario" 1
done
for scenario in read write; do
  wanted audited || continue
  run_one audited "$AUDIT_PID" "$AUDIT_PORT" "$scenario"
done
RSS_KB="$(awk '/^VmRSS/ { print $2 }' "/proc/$COFFER_PID/status")"

# ---------------------------------------------------------------------------------------------
python3 - "$RESULTS" "$(getconf CLK_TCK)" "$BODY_BYTES" "$RSS_KB" <<'EOF'
import sys
path, clk, body, rss = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = []
for line in open(path):
    kv = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
    rows.append(kv)
def find(server, scenario):
    for r in rows:
        if r["server"] == server and r["scenario"] == scenario:
            return r
    return None
def cpu_us(r):
    ops = int(r["ops"])
    return int(r["cpu_ticks"]) * 1e6 / clk / ops if ops else float("nan")
import os
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print()
print(f"machine: {os.cpu_count()} CPUs, {cpu}; load average at the end {open('/proc/loadavg').read().split()[0]}")
print(f"body {body} bytes; cofferd RSS after the run {int(rss) // 1024} MiB")
hdr = f"{'scenario':8} {'server':7} {'ops/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'p999 ms':>8} {'errors':>6} {'CPU us/op':>9} {'p11/op':>7}"
print(hdr)
print("-" * len(hdr))
for r in rows:
    p11 = int(r["p11_calls"])
    p11s = "-" if p11 < 0 else f"{p11 / max(int(r['ops']), 1):.3f}"
    print(f"{r['scenario']:8} {r['server']:7} {float(r['ops_per_s']):9.0f} {int(r['p50_us'])/1000:7.2f} "
          f"{int(r['p99_us'])/1000:7.2f} {int(r['p999_us'])/1000:8.2f} {int(r['errors']):6d} "
          f"{cpu_us(r):9.0f} {p11s:>7}")
print()
print("ratios (coffer / reference; throughput: higher is better, CPU per op: lower is better)")
for scenario, target_nginx, target_bare in (("read", 0.6, 0.8), ("fresh", 0.7, None)):
    c, n, b = find("coffer", scenario), find("nginx", scenario), find("bare", scenario)
    if not (c and n and b):
        continue
    rn = float(c["ops_per_s"]) / float(n["ops_per_s"])
    rb = float(c["ops_per_s"]) / float(b["ops_per_s"])
    cn = cpu_us(c) / cpu_us(n)
    cb = cpu_us(c) / cpu_us(b)
    tn = f" (target >= {target_nginx}: {'met' if rn >= target_nginx else 'NOT met'})"
    tb = f" (target >= {target_bare}: {'met' if rb >= target_bare else 'NOT met'})" if target_bare else ""
    print(f"  {scenario:6} rate coffer/nginx {rn:5.2f}{tn}; coffer/bare {rb:5.2f}{tb}")
    tc = " (target <= 2: " + ("met" if cn <= 2 else "NOT met") + ")" if scenario == "read" else ""
    print(f"  {scenario:6} CPU/op coffer/nginx {cn:5.2f}{tc}; coffer/bare {cb:5.2f}")
c, f = find("coffer", "resume"), find("coffer", "fresh")
if c:
    line = (f"  resume: {float(c['ops_per_s']):.0f} connections/s, {c.get('resumed', '?')} of "
            f"{c['handshakes']} handshakes resumed, CPU {cpu_us(c):.0f} us per connection")
    if f:
        line += f" ({float(c['ops_per_s']) / float(f['ops_per_s']):.2f}x the rate and {cpu_us(c) / cpu_us(f):.2f}x the CPU of fresh)"
    print(line)
c = find("coffer", "read")
if c:
    p99 = int(c["p99_us"]) / 1000
    print(f"  read p99 {p99:.2f} ms at {c['connections']} connections (target < 5 ms: {'met' if p99 < 5 else 'NOT met'})")
w = find("coffer", "write")
if w:
    print(f"  writes {float(w['ops_per_s']):.0f}/s (target >= 1000/s: {'met' if float(w['ops_per_s']) >= 1000 else 'NOT met'})")
for scenario in ("read", "write"):
    c, a = find("coffer", scenario), find("audited", scenario)
    if c and a:
        print(f"  audit cost, {scenario}: rate audited/coffer {float(a['ops_per_s']) / float(c['ops_per_s']):5.2f}; "
              f"CPU/op +{cpu_us(a) - cpu_us(c):.0f} us")
p = [r for r in rows if r["server"] == "coffer" and int(r["p11_calls"]) >= 0]
if p:
    print("  PKCS#11 calls by cofferd: " + ", ".join(f"{r['scenario']} {r['p11_calls']}" for r in p)
          + " (target: 0 per request)")
EOF

# ---------------------------------------------------------------------------------------------
if [[ "$PROFILE" == 1 ]]; then
  log "profiling cofferd under the $PROFILE_SCENARIO load (perf record -e cpu-clock, ${DURATION}s)"
  perf record -q -e cpu-clock -F 999 -g -p "$COFFER_PID" -o "$TMP/perf.data" -- sleep "$DURATION" \
    >/dev/null 2>&1 &
  perfpid=$!
  "$LOAD" --port "$COFFER_PORT" --ca "$PKI/ca.crt" --cert "$PKI/unit-web.crt" --key "$PKI/unit-web.key" \
    --token "$TOKEN" --scenario "$PROFILE_SCENARIO" --connections "$CONNS" --threads "$CLIENT_THREADS" \
    --duration "$DURATION" --label "profile-$PROFILE_SCENARIO" >/dev/null 2>&1 || true
  wait "$perfpid" 2>/dev/null || true
  perf report -i "$TMP/perf.data" --no-children --sort dso -g none --stdio >"$TMP/perf-dso.txt" 2>/dev/null || true
  perf report -i "$TMP/perf.data" --no-children --sort dso,symbol -g none --stdio \
    >"$TMP/perf-sym.txt" 2>/dev/null || true
  echo
  echo "profile: cofferd, $PROFILE_SCENARIO scenario, self time by shared object"
  grep -v '^#' "$TMP/perf-dso.txt" | grep -v '^$' | head -15 || true
  echo
  echo "profile: cofferd, $PROFILE_SCENARIO scenario, top symbols (self time)"
  grep -v '^#' "$TMP/perf-sym.txt" | grep -v '^$' \
    | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//' | cut -c1-150 | head -40 || true
fi

if [[ "$MICRO" == 1 && -x "$MICROBIN" ]]; then
  echo
  echo "micro-benchmarks (Google Benchmark)"
  (cd "$TMP" && TMPDIR="$TMP" "$MICROBIN" --benchmark_min_time=0.2 2>/dev/null)
fi
