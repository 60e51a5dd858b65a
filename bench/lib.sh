# bench/lib.sh: the throw-away coffer set-up shared by bench/run.sh and bench/rss.sh. Sourced,
# not run: the caller sets SRC and TMP and defines log and die first.

# BUILD: $COFFER_BUILD_DIR when set, else scripts/build.sh's build/ (built now).
bench_build() {
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
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A SoftHSM token "coffer" in $TMP/softhsm with a random PIN, and the PIN as the systemd-style
# credential $TMP/credentials/coffer-pkcs11-pin (exported as CREDENTIALS_DIRECTORY).
bench_softhsm_token() {
  mkdir -p "$TMP/softhsm/tokens"
  cat >"$TMP/softhsm/softhsm2.conf" <<CONF
directories.tokendir = $TMP/softhsm/tokens
objectstore.backend = file
log.level = ERROR
CONF
  export SOFTHSM2_CONF="$TMP/softhsm/softhsm2.conf"
  unset VAULT_ADDR VAULT_TOKEN || true
  local pin
  pin="$(openssl rand -hex 12)"
  softhsm2-util --init-token --free --label coffer --so-pin "$(openssl rand -hex 12)" --pin "$pin" >/dev/null
  install -d -m 0700 "$TMP/credentials"
  printf '%s' "$pin" >"$TMP/credentials/coffer-pkcs11-pin"
  chmod 0600 "$TMP/credentials/coffer-pkcs11-pin"
  export CREDENTIALS_DIRECTORY="$TMP/credentials"
}

# The config both benches start from (the caller appends its own tables):
# <file> <port> <db> [more [listener] lines].
bench_base_config() {
  cat >"$1" <<CONF
[listener]
address = "127.0.0.1"
port = $2
tls_cert_file = "$PKI/server.crt"
tls_key_file = "$PKI/server.key"
client_ca_file = "$PKI/ca.crt"
${4:-}

[storage]
path = "$3"

[protector]
type = "pkcs11"

[protector.pkcs11]
module = "softhsm2"
token_label = "coffer"
key_label = "coffer-mk-1"
pin_credential = "coffer-pkcs11-pin"

[log]
level = "warning"
CONF
}

# Appends rate limits no benchmark load reaches for the given classes: <file> <class>...
bench_raise_limits() {
  local file="$1" class
  shift
  for class in "$@"; do
    printf '\n[rate_limit.%s]\nidentity_rate = 1000000.0\nidentity_burst = 100000000\naddress_rate = 1000000.0\naddress_burst = 100000000\n' \
      "$class" >>"$file"
  done
}

# cofferctl init on <config>; prints the root token.
bench_init() {
  local token
  token="$("$COFFERCTL" init --config "$1" --format json </dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["root_token"])')"
  [[ -n "$token" ]] || die "cofferctl init gave no root token"
  echo "$token"
}

wait_https() {  # <port> <what> <pid>
  local i
  for i in $(seq 1 200); do
    kill -0 "$3" 2>/dev/null || die "$2 exited during start-up (see $TMP)"
    if curl -s -o /dev/null --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/unit-web.crt" \
        --key "$PKI/unit-web.key" "https://127.0.0.1:$1/v1/sys/health"; then
      return 0
    fi
    sleep 0.1
  done
  die "$2 not answering on 127.0.0.1:$1"
}

stop_pid() {  # <pid> <what>: SIGTERM, then wait up to 30 s for it to exit
  kill -TERM "$1"
  local i
  for i in $(seq 1 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$1" 2>/dev/null && die "$2 did not stop on SIGTERM"
  wait "$1" 2>/dev/null || true
}
