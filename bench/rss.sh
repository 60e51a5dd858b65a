#!/usr/bin/env bash
# bench/rss.sh: cofferd's idle resident memory with many secrets stored (issue 7: "cofferd idle
# RSS under 30 MB with 100,000 secrets stored").
#
#   bash bench/rss.sh
#
# Builds (scripts/build.sh -> build/) unless COFFER_BUILD_DIR is set, sets up a throw-away coffer
# as bench/run.sh does (PKI, SoftHSM token, cofferctl init, cofferd on a free loopback port),
# writes RSS_SECRETS distinct secrets of ~100 bytes through the API (coffer_load --scenario fill:
# real PUTs, so every row is sealed by the barrier and committed as in production), stops
# cofferd, starts it again on the same database, lets it idle for RSS_IDLE seconds and reads
# VmRSS (and its parts) from /proc/<pid>/status. Then it reads one of the secrets back (the rows
# are real) and prints the RSS again. Everything it starts is stopped by the EXIT trap.
#
# Knobs (environment):
#   RSS_SECRETS=100000   how many secrets to store
#   RSS_IDLE=10          seconds to let the restarted daemon idle before reading its RSS
#   RSS_TARGET_MB=30     the issue's target
#   COFFER_BUILD_DIR     use this build instead of running scripts/build.sh (build/)
#   BENCH_KEEP=1         keep the temp directory (logs, config, db)
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
SECRETS="${RSS_SECRETS:-100000}"
IDLE="${RSS_IDLE:-10}"
TARGET_MB="${RSS_TARGET_MB:-30}"

die() { echo "rss: $*" >&2; exit 1; }
log() { echo "rss: $*" >&2; }

if [[ -n "${COFFER_BUILD_DIR:-}" ]]; then
  BUILD="$(cd "$COFFER_BUILD_DIR" && pwd)"
else
  log "building (scripts/build.sh)"
  bash "$SRC/scripts/build.sh" >/dev/null
  BUILD="$SRC/build"
fi
COFFERD="$BUILD/daemon/cofferd"
COFFERCTL="$BUILD/cli/cofferctl"
LOAD="$BUILD/bench/coffer_load"
for b in "$COFFERD" "$COFFERCTL" "$LOAD"; do [[ -x "$b" ]] || die "not built: $b"; done
for t in softhsm2-util openssl curl python3; do
  command -v "$t" >/dev/null || die "$t not installed (run: bash scripts/install-deps.sh)"
done

TMP="$(mktemp -d /tmp/coffer-rss.XXXXXX)"
COFFER_PID=""
cleanup() {
  local rc=$?
  if [[ -n "$COFFER_PID" ]]; then
    kill -TERM "$COFFER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$COFFER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$COFFER_PID" 2>/dev/null || true
    wait "$COFFER_PID" 2>/dev/null || true
  fi
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

PKI="$TMP/pki"
bash "$SRC/tests/support/make-pki.sh" "$PKI" >/dev/null

mkdir -p "$TMP/softhsm/tokens" "$TMP/data"
cat >"$TMP/softhsm/softhsm2.conf" <<EOF
directories.tokendir = $TMP/softhsm/tokens
objectstore.backend = file
log.level = ERROR
EOF
export SOFTHSM2_CONF="$TMP/softhsm/softhsm2.conf"
unset CREDENTIALS_DIRECTORY VAULT_ADDR VAULT_TOKEN || true
PIN="$(openssl rand -hex 12)"
softhsm2-util --init-token --free --label coffer --so-pin "$(openssl rand -hex 12)" --pin "$PIN" >/dev/null
install -d -m 0700 "$TMP/credentials"
printf '%s' "$PIN" >"$TMP/credentials/coffer-pkcs11-pin"
chmod 0600 "$TMP/credentials/coffer-pkcs11-pin"

PORT="$(free_port)"
# The daemon's defaults otherwise (threads = cores, limits, caches): what is measured is what an
# operator gets. The rate limits are raised only so the fill (one certificate, ~2,000 writes a
# second) is not refused.
cat >"$TMP/cofferd.toml" <<EOF
[listener]
address = "127.0.0.1"
port = $PORT
tls_cert_file = "$PKI/server.crt"
tls_key_file = "$PKI/server.key"
client_ca_file = "$PKI/ca.crt"

[storage]
path = "$TMP/data/coffer.db"

[protector]
type = "pkcs11"

[protector.pkcs11]
module = "softhsm2"
token_label = "coffer"
key_label = "coffer-mk-1"
pin_credential = "coffer-pkcs11-pin"

[log]
level = "warning"

[rate_limit.write]
identity_rate = 1000000.0
identity_burst = 100000000
address_rate = 1000000.0
address_burst = 100000000
EOF
export CREDENTIALS_DIRECTORY="$TMP/credentials"
ROOT_TOKEN="$("$COFFERCTL" init --config "$TMP/cofferd.toml" --format json </dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["root_token"])')"
[[ -n "$ROOT_TOKEN" ]] || die "cofferctl init gave no root token"

start_cofferd() {
  (cd "$TMP" && exec "$COFFERD" --config "$TMP/cofferd.toml" >>"$TMP/cofferd.log" 2>&1) &
  COFFER_PID=$!
  local i
  for i in $(seq 1 200); do
    kill -0 "$COFFER_PID" 2>/dev/null || die "cofferd exited during start-up (see $TMP/cofferd.log)"
    if curl -s -o /dev/null --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/unit-admin.crt" \
        --key "$PKI/unit-admin.key" "https://127.0.0.1:$PORT/v1/sys/health"; then
      return 0
    fi
    sleep 0.1
  done
  die "cofferd not answering on 127.0.0.1:$PORT"
}

stop_cofferd() {
  kill -TERM "$COFFER_PID"
  local i
  for i in $(seq 1 300); do kill -0 "$COFFER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$COFFER_PID" 2>/dev/null && die "cofferd did not stop on SIGTERM"
  wait "$COFFER_PID" 2>/dev/null || true
  COFFER_PID=""
}

status_kb() {  # <field> from /proc/<pid>/status, in kB
  awk -v f="$1:" '$1 == f { print $2 }' "/proc/$COFFER_PID/status"
}

rss_line() {  # <label>
  printf '%-22s VmRSS %6d kB (anon %6d, file %6d, shmem %5d)  VmHWM %6d kB  VmLck %5d kB  threads %s\n' \
    "$1" "$(status_kb VmRSS)" "$(status_kb RssAnon)" "$(status_kb RssFile)" "$(status_kb RssShmem)" \
    "$(status_kb VmHWM)" "$(status_kb VmLck)" "$(awk '$1 == "Threads:" { print $2 }' "/proc/$COFFER_PID/status")"
}

read_secret() {  # <path below secret/> -> HTTP status
  curl -sS -o "$TMP/read.json" -w '%{http_code}' --max-time 10 --cacert "$PKI/ca.crt" \
    --cert "$PKI/unit-admin.crt" --key "$PKI/unit-admin.key" -H "X-Vault-Token: $ROOT_TOKEN" \
    "https://127.0.0.1:$PORT/v1/secret/$1"
}

start_cofferd
log "cofferd on 127.0.0.1:$PORT (pid $COFFER_PID); writing $SECRETS secrets through the API"
RESULT="$("$LOAD" --port "$PORT" --ca "$PKI/ca.crt" --cert "$PKI/unit-admin.crt" --key "$PKI/unit-admin.key" \
  --token "$ROOT_TOKEN" --scenario fill --count "$SECRETS" --connections 64 --threads 2 --duration 600 \
  --label fill 2>>"$TMP/load-errors.log" | grep '^RESULT ')"
log "$RESULT"
ops="$(sed -E 's/.* ops=([0-9]+) .*/\1/' <<<"$RESULT")"
errors="$(sed -E 's/.* errors=([0-9]+) .*/\1/' <<<"$RESULT")"
[[ "$ops" == "$SECRETS" && "$errors" == 0 ]] || die "fill stored $ops of $SECRETS secrets with $errors errors (see $TMP)"
last=$((SECRETS - 1))
[[ "$(read_secret "fill/$((last / 1000))/$last")" == 200 ]] || die "the last secret written does not read back"
BUSY="$(rss_line "after the fill")"
DB_BYTES="$(du -cb "$TMP/data" | tail -1 | cut -f1)"

stop_cofferd
start_cofferd
log "restarted cofferd (pid $COFFER_PID); idle for ${IDLE}s"
sleep "$IDLE"
IDLE_LINE="$(rss_line "restarted, idle ${IDLE}s")"
IDLE_KB="$(status_kb VmRSS)"
[[ "$(read_secret "fill/0/0")" == 200 ]] || die "secret fill/0/0 does not read after the restart"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["data"]; assert d["n"] == 0, d' "$TMP/read.json" \
  || die "secret fill/0/0 has the wrong content"
AFTER_READ="$(rss_line "after one read")"

echo
echo "cofferd RSS with $SECRETS secrets stored (database $((DB_BYTES / 1024 / 1024)) MiB, $(nproc) cores)"
echo "$BUSY"
echo "$IDLE_LINE"
echo "$AFTER_READ"
echo "idle RSS $((IDLE_KB / 1024)) MiB ($IDLE_KB kB): target < $TARGET_MB MB: $([[ $IDLE_KB -lt $((TARGET_MB * 1000000 / 1024)) ]] && echo met || echo NOT met)"
