#!/usr/bin/env bash
# dev.sh — a local cofferd for development, everything under ./.dev/ (git-ignored).
#
#   bash scripts/dev.sh start    install deps, build, then (once) PKI, SoftHSM token, PIN, config,
#                                cofferctl init; start cofferd in the background, wait for health,
#                                write policy/role/sample secret and .dev/env; print how to use it
#   bash scripts/dev.sh stop     stop it (SIGTERM, then SIGKILL after 10 s)
#   bash scripts/dev.sh status   is it running and healthy (exit 0), or not (exit 3)
#   bash scripts/dev.sh reset    stop it and delete .dev/ (new token, new PKI, no secrets)
#
# Running `start` again is harmless: it says so when cofferd is already running.
# Environment: COFFER_BUILD_DIR (default ./build), COFFER_DEV_DIR (default ./.dev),
# COFFER_DEV_NO_BUILD=1 (skip install-deps.sh and build.sh: you have just built).
# The PIN reaches cofferd only as a file in $CREDENTIALS_DIRECTORY, never through argv or env;
# the root token is kept in .dev/root-token (0600) and sent to curl through a pipe, never argv.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${COFFER_BUILD_DIR:-$ROOT/build}
DEV=${COFFER_DEV_DIR:-$ROOT/.dev}
COFFERD=$BUILD/daemon/cofferd
COFFERCTL=$BUILD/cli/cofferctl
MAKE_PKI=${COFFER_MAKE_PKI:-$ROOT/tests/support/make-pki.sh}

PKI=$DEV/pki
HSM=$DEV/softhsm
CREDS=$DEV/credentials
PIN_FILE=$CREDS/coffer-pkcs11-pin
CONFIG=$DEV/cofferd.toml
DB=$DEV/data/coffer.db
LOG=$DEV/cofferd.log
PIDFILE=$DEV/cofferd.pid
ROOT_TOKEN=$DEV/root-token
ENVFILE=$DEV/env
TOKEN_LABEL=coffer
KEY_LABEL=coffer-mk-1
if [ "$DEV" = "$ROOT/.dev" ]; then SHOWN=.dev; else SHOWN=$DEV; fi # for messages
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

say() { printf 'dev.sh: %s\n' "$*"; }
die() {
  printf 'dev.sh: error: %s\n' "$*" >&2
  exit 1
}
show_log() { # the end of cofferd's log since the last start
  if [ -s "$LOG" ]; then
    printf '\n--- %s (since the last start) ---\n' "$LOG" >&2
    tac "$LOG" | sed '/^=== dev.sh start /q' | tac | tail -n 30 >&2
    printf -- '---\n' >&2
  fi
}

# The pid of our running cofferd, or nothing (a stale pid file, or a pid now used by another program).
running_pid() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "cofferd"; then
    echo "$pid"
  fi
}

config_port() { sed -n 's/^port *= *\([0-9][0-9]*\).*/\1/p' "$CONFIG" 2>/dev/null | head -n 1; }

port_free() {
  "$PY" - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

pick_port() {
  local p
  p=$(config_port)
  if [ -n "$p" ] && port_free "$p"; then
    echo "$p"
    return
  fi
  for p in $(seq 8200 8299); do
    if port_free "$p"; then
      echo "$p"
      return
    fi
  done
  die "no free port in 8200-8299 on 127.0.0.1"
}

# curl with the dev CA and a client certificate (default unit-admin). The root token, when asked
# for (ROOT=1), is fed to curl as a header file through a pipe: it never appears in argv.
api() { # api METHOD PATH [BODY]  -> prints the body, then the status code on the last line
  local method=$1 path=$2 body=${3-} cert=${CERT:-unit-admin}
  local args=(-sS --cacert "$PKI/ca.crt" --cert "$PKI/$cert.crt" --key "$PKI/$cert.key"
    -X "$method" -w '\n%{http_code}' "https://127.0.0.1:$PORT$path")
  if [ -n "$body" ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$body")
  fi
  if [ "${ROOT:-0}" = 1 ]; then
    curl "${args[@]}" -H @<(printf 'X-Vault-Token: %s\n' "$(cat "$ROOT_TOKEN")")
  else
    curl "${args[@]}"
  fi
}

api_expect() { # api_expect STATUS METHOD PATH [BODY]: fails loudly unless the status matches
  local want=$1 out code
  shift
  out=$(api "$@") || die "$1 $2: curl failed"
  code=${out##*$'\n'}
  if [ "$code" != "$want" ]; then
    die "$1 $2: expected HTTP $want, got $code: ${out%$'\n'*}"
  fi
  printf '%s' "${out%$'\n'*}"
}

health_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 3 --cacert "$PKI/ca.crt" \
    --cert "$PKI/unit-admin.crt" --key "$PKI/unit-admin.key" "https://127.0.0.1:$PORT/v1/sys/health" || true
}

usage_text() {
  cat <<EOF

cofferd is running at https://127.0.0.1:$PORT (pid $(running_pid), log $SHOWN/cofferd.log)

  source $SHOWN/env        # VAULT_ADDR, VAULT_CACERT, VAULT_CLIENT_CERT/KEY (unit web01), VAULT_TOKEN (root)

  # Log in as the unit web01 with its client certificate, then read secret/app/db:
  TOKEN=\$(curl -s --cacert "\$VAULT_CACERT" --cert "\$VAULT_CLIENT_CERT" --key "\$VAULT_CLIENT_KEY" \\
      -X POST -d '{"name":"web"}' "\$VAULT_ADDR/v1/auth/cert/login" \\
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth"]["client_token"])')
  curl -s --cacert "\$VAULT_CACERT" --cert "\$VAULT_CLIENT_CERT" --key "\$VAULT_CLIENT_KEY" \\
      -H "X-Vault-Token: \$TOKEN" "\$VAULT_ADDR/v1/secret/app/db"

  # As root (VAULT_TOKEN), write a secret:
  curl -s --cacert "\$VAULT_CACERT" --cert "\$VAULT_CLIENT_CERT" --key "\$VAULT_CLIENT_KEY" \\
      -H "X-Vault-Token: \$VAULT_TOKEN" -X PUT -d '{"password":"hunter2"}' "\$VAULT_ADDR/v1/secret/app/db"

  # Every request is in the tamper-evident audit log $SHOWN/audit.log; check it with
  CREDENTIALS_DIRECTORY=$CREDS SOFTHSM2_CONF=$HSM/softhsm2.conf \\
      $BUILD/cli/cofferctl audit verify --config $CONFIG $DEV/audit.log

  bash scripts/dev.sh status | stop | reset
EOF
}

write_config() {
  mkdir -p "$DEV/data"
  cat >"$CONFIG" <<EOF
# Development config written by scripts/dev.sh (rewritten on every start).
[listener]
address = "127.0.0.1"
port = $PORT
tls_cert_file = "$PKI/server.crt"
tls_key_file = "$PKI/server.key"
client_ca_file = "$PKI/ca.crt"

[storage]
path = "$DB"

[protector]
type = "pkcs11"

[protector.pkcs11]
module = "softhsm2"
token_label = "$TOKEN_LABEL"
key_label = "$KEY_LABEL"
pin_credential = "coffer-pkcs11-pin"

[tokens]
default_ttl = "15m"
max_ttl = "24h"

[audit]
path = "$DEV/audit.log"

[log]
level = "info"
EOF
}

setup_once() {
  umask 077
  mkdir -p "$DEV"

  if [ ! -f "$PKI/ca.crt" ]; then
    [ -f "$MAKE_PKI" ] || die "PKI script missing: $MAKE_PKI"
    say "creating the dev PKI in $SHOWN/pki"
    bash "$MAKE_PKI" "$PKI" >"$DEV/make-pki.log" 2>&1 || {
      cat "$DEV/make-pki.log" >&2
      die "make-pki.sh failed"
    }
  fi
  local f
  for f in ca.crt server.crt server.key unit-web.crt unit-web.key unit-admin.crt unit-admin.key; do
    [ -f "$PKI/$f" ] || die "make-pki.sh did not create $PKI/$f"
  done

  mkdir -p "$CREDS" "$HSM/tokens"
  chmod 700 "$CREDS"
  if [ ! -s "$PIN_FILE" ]; then
    say "generating the token PIN ($SHOWN/credentials/coffer-pkcs11-pin)"
    (umask 077 && openssl rand -hex 16 | tr -d '\n' >"$PIN_FILE")
  fi
  chmod 600 "$PIN_FILE"
  [ -s "$HSM/so-pin" ] || (umask 077 && openssl rand -hex 16 | tr -d '\n' >"$HSM/so-pin")

  cat >"$HSM/softhsm2.conf" <<EOF
directories.tokendir = $HSM/tokens
objectstore.backend = file
log.level = ERROR
EOF
  export SOFTHSM2_CONF=$HSM/softhsm2.conf
  if ! softhsm2-util --show-slots 2>/dev/null | grep -Eq "Label: +$TOKEN_LABEL( |$)"; then
    [ ! -f "$DB" ] || die "the database exists but the SoftHSM token is gone: run 'bash scripts/dev.sh reset'"
    say "initialising the SoftHSM token '$TOKEN_LABEL' ($SHOWN/softhsm)"
    softhsm2-util --init-token --free --label "$TOKEN_LABEL" \
      --so-pin "$(cat "$HSM/so-pin")" --pin "$(cat "$PIN_FILE")" >/dev/null ||
      die "softhsm2-util --init-token failed"
  fi

  PORT=$(pick_port)
  write_config

  if [ ! -f "$DB" ]; then
    say "cofferctl init (master key $KEY_LABEL in the token, keyring in $SHOWN/data/coffer.db)"
    local out token
    if ! out=$(CREDENTIALS_DIRECTORY=$CREDS "$COFFERCTL" init --config "$CONFIG" --format json 2>"$DEV/init.err"); then
      cat "$DEV/init.err" >&2
      die "cofferctl init failed (to start over: bash scripts/dev.sh reset)"
    fi
    token=$(printf '%s' "$out" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["root_token"])') ||
      die "cofferctl init printed no JSON root_token"
    (umask 077 && printf '%s\n' "$token" >"$ROOT_TOKEN")
    rm -f "$DEV/init.err"
    say "root token saved in $SHOWN/root-token (0600)"
  fi
  [ -s "$ROOT_TOKEN" ] || die "the database exists but $SHOWN/root-token is missing: run 'bash scripts/dev.sh reset'"
}

start_daemon() {
  say "starting cofferd on 127.0.0.1:$PORT (log $SHOWN/cofferd.log)"
  printf '\n=== dev.sh start %s ===\n' "$(date -Is)" >>"$LOG"
  # SOFTHSM2_CONF and CREDENTIALS_DIRECTORY in cofferd's environment only; setsid detaches it from
  # this terminal, so Ctrl-C here does not stop it.
  CREDENTIALS_DIRECTORY=$CREDS SOFTHSM2_CONF=$HSM/softhsm2.conf \
    setsid "$COFFERD" --config "$CONFIG" </dev/null >>"$LOG" 2>&1 &
  local pid=$! code
  echo "$pid" >"$PIDFILE"
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      show_log
      die "cofferd exited during start-up (see above)"
    fi
    code=$(health_code)
    if [ "$code" = 200 ]; then
      return 0
    fi
    sleep 0.1
  done
  show_log
  kill -TERM "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  die "cofferd did not answer GET /v1/sys/health with 200 within 15 s (last: ${code:-none})"
}

configure() {
  local body
  body=$("$PY" -c 'import json; print(json.dumps({"policy": "path \"secret/app/*\" { capabilities = [\"read\", \"list\"] }"}))')
  ROOT=1 api_expect 204 PUT /v1/sys/policies/acl/web "$body" >/dev/null
  body=$("$PY" - "$PKI/ca.crt" <<'EOF'
import json, sys
print(json.dumps({"certificate": open(sys.argv[1]).read(), "allowed_common_names": ["web01"],
                  "token_policies": ["web"], "token_ttl": "15m"}))
EOF
  )
  ROOT=1 api_expect 204 POST /v1/auth/cert/certs/web "$body" >/dev/null
  local out code
  out=$(ROOT=1 api GET /v1/secret/app/db) || die "reading secret/app/db failed"
  code=${out##*$'\n'}
  if [ "$code" = 404 ]; then
    ROOT=1 api_expect 204 PUT /v1/secret/app/db '{"username":"app","password":"dev-password"}' >/dev/null
    say "wrote the sample secret secret/app/db"
  elif [ "$code" != 200 ]; then
    die "GET /v1/secret/app/db: HTTP $code: ${out%$'\n'*}"
  fi
  say "policy 'web' and cert role 'web' (CN web01 -> policy web) are in place"

  # Smoke test: what the printed instructions do.
  local login token
  login=$(CERT=unit-web api_expect 200 POST /v1/auth/cert/login '{"name":"web"}')
  token=$(printf '%s' "$login" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["auth"]["client_token"])') ||
    die "cert login returned no client_token: $login"
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.crt" --cert "$PKI/unit-web.crt" \
    --key "$PKI/unit-web.key" -H @<(printf 'X-Vault-Token: %s\n' "$token") \
    "https://127.0.0.1:$PORT/v1/secret/app/db")
  [ "$code" = 200 ] || die "smoke test: unit web01 could not read secret/app/db (HTTP $code)"
  say "smoke test passed: unit web01 logged in with its certificate and read secret/app/db"
}

write_env() {
  (
    umask 077
    {
      echo "# Written by scripts/dev.sh: source it (VAULT_TOKEN is the root token)."
      printf 'export VAULT_ADDR=%q\n' "https://127.0.0.1:$PORT"
      printf 'export VAULT_CACERT=%q\n' "$PKI/ca.crt"
      printf 'export VAULT_CLIENT_CERT=%q\n' "$PKI/unit-web.crt"
      printf 'export VAULT_CLIENT_KEY=%q\n' "$PKI/unit-web.key"
      # shellcheck disable=SC2016 # expanded when the file is sourced, not now
      printf 'export VAULT_TOKEN="$(cat %q)"\n' "$ROOT_TOKEN"
    } >"$ENVFILE"
  )
}

cmd_start() {
  local pid
  pid=$(running_pid)
  if [ -n "$pid" ]; then
    PORT=$(config_port)
    say "cofferd is already running (pid $pid)"
    usage_text
    return 0
  fi
  rm -f "$PIDFILE"
  if [ "${COFFER_DEV_NO_BUILD:-0}" != 1 ]; then
    bash "$ROOT/scripts/install-deps.sh" || die "installing the dependencies failed"
    (cd "$ROOT" && bash scripts/build.sh) || die "build failed"
  fi
  [ -x "$COFFERD" ] || die "not built: $COFFERD"
  [ -x "$COFFERCTL" ] || die "not built: $COFFERCTL"
  setup_once
  start_daemon
  configure
  write_env
  usage_text
}

cmd_stop() {
  local pid
  pid=$(running_pid)
  if [ -z "$pid" ]; then
    rm -f "$PIDFILE"
    say "cofferd is not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      say "cofferd stopped (pid $pid)"
      return 0
    fi
    sleep 0.1
  done
  say "cofferd (pid $pid) did not stop within 10 s of SIGTERM: sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  show_log
  return 1
}

cmd_status() {
  local pid code
  pid=$(running_pid)
  if [ -z "$pid" ]; then
    say "cofferd is not running"
    [ -f "$DB" ] && say "state is in $SHOWN/ (start it with: bash scripts/dev.sh start)"
    return 3
  fi
  PORT=$(config_port)
  code=$(health_code)
  if [ "$code" = 200 ]; then
    say "cofferd is running (pid $pid) and healthy at https://127.0.0.1:$PORT"
    return 0
  fi
  say "cofferd is running (pid $pid) but GET /v1/sys/health answered ${code:-nothing}"
  show_log
  return 1
}

cmd_reset() {
  cmd_stop || true
  rm -rf "$DEV"
  say "removed $SHOWN/ (next start makes a new PKI, token, PIN and root token)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  *)
    echo "usage: bash scripts/dev.sh start|stop|status|reset" >&2
    exit 2
    ;;
esac
