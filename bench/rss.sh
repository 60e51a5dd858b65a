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

# shellcheck source=bench/lib.sh
source "$SRC/bench/lib.sh"
bench_build
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

PKI="$TMP/pki"
bash "$SRC/tests/support/make-pki.sh" "$PKI" >/dev/null

mkdir -p "$TMP/data"
bench_softhsm_token
PORT="$(free_port)"
# The daemon's defaults otherwise (threads = cores, limits, caches): what is measured is what an
# operator gets. The rate limits are raised only so the fill (one certificate, ~2,000 writes a
# second) is not refused.
bench_base_config "$TMP/cofferd.toml" "$PORT" "$TMP/data/coffer.db"
bench_raise_limits "$TMP/cofferd.toml" write
ROOT_TOKEN="$(bench_init "$TMP/cofferd.toml")"

start_cofferd() {
  (cd "$TMP" && exec "$COFFERD" --config "$TMP/cofferd.toml" >>"$TMP/cofferd.log" 2>&1) &
  COFFER_PID=$!
  wait_https "$PORT" cofferd "$COFFER_PID"
}

stop_cofferd() {
  stop_pid "$COFFER_PID" cofferd
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
