#!/usr/bin/env bash
# make-pki.sh: a throw-away development/test PKI for coffer's mutual-TLS front door.
#
#   tests/support/make-pki.sh [--force] <outdir>
#
# Creates, with the openssl CLI (OpenSSL 3.0), all keys ECDSA P-256:
#   ca.crt ca.key                 dev CA (the client CA bundle and the server's issuer)
#   server.crt server.key         server certificate, SANs 127.0.0.1, localhost, ::1
#   unit-web.crt/.key             client CN=web01, DNS SAN web01.coffer.test
#   unit-admin.crt/.key           client CN=admin
#   unit-other.crt/.key           client CN=web02
#   expired.crt/.key              client signed by the dev CA, validity entirely in the past
#   revoked.crt/.key              client signed by the dev CA, listed in ca.crl
#   ca.crl                        CRL of the dev CA (PEM), lists revoked.crt
#   ca-empty.crl                  an earlier CRL of the dev CA that lists nothing (reload tests)
#   other-ca.crl                  an (empty) CRL issued by other-ca (wrong-issuer tests)
#   other-ca.crt other-ca.key     an unrelated CA
#   foreign.crt/.key              client signed by other-ca
#   <name>.pem                    for every client: certificate + key in one file (curl/ab -E)
# Private keys are mode 0600. Idempotent: does nothing when <outdir>/ca.crt exists, unless
# --force (which regenerates everything). Prints nothing on success, only errors (to stderr).
# Never use these certificates outside tests: the CA key sits next to them unprotected.
set -euo pipefail

force=0
outdir=""
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "make-pki.sh: unknown option $arg" >&2; exit 2 ;;
    *) [[ -z "$outdir" ]] || { echo "make-pki.sh: one output directory only" >&2; exit 2; }
       outdir="$arg" ;;
  esac
done
[[ -n "$outdir" ]] || { echo "usage: make-pki.sh [--force] <outdir>" >&2; exit 2; }
command -v openssl >/dev/null || { echo "make-pki.sh: openssl not found" >&2; exit 1; }

mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
if [[ -f "$outdir/ca.crt" && $force -eq 0 ]]; then
  exit 0
fi

umask 077
work="$(mktemp -d "$outdir/.pki-work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# openssl writes progress chatter to stderr; keep it unless the command fails.
run() {
  local log="$work/last.log"
  if ! "$@" >"$log" 2>&1; then
    echo "make-pki.sh: failed: $*" >&2
    cat "$log" >&2
    exit 1
  fi
}

newkey() { run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# Extensions for every kind of certificate, used with `openssl ca -extfile`.
cat >"$work/ext.cnf" <<'EOF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[web_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:web01.coffer.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# A minimal `openssl ca` setup per CA: `openssl ca` (unlike `x509 -req` in 3.0) accepts
# -startdate/-enddate, which the expired certificate needs, and keeps the index a CRL is made from.
make_ca() {  # <name> <CN>
  local name="$1" cn="$2" dir="$work/$1"
  mkdir -p "$dir/new"
  : >"$dir/index.txt"
  echo "unique_subject = no" >"$dir/index.txt.attr"
  openssl rand -hex 16 >"$dir/serial"
  echo 1000 >"$dir/crlnumber"
  cat >"$dir/ca.cnf" <<EOF
[ca]
default_ca = this_ca
[this_ca]
dir = $dir
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_days = 825
default_crl_days = 3650
policy = policy_any
copy_extensions = none
email_in_dn = no
[policy_any]
organizationName = optional
commonName = supplied
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $cn
EOF
  newkey "$dir/ca.key"
  run openssl req -new -x509 -config "$dir/ca.cnf" -key "$dir/ca.key" -days 3650 -sha256 \
    -subj "/O=coffer test/CN=$cn" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -addext "subjectKeyIdentifier=hash" -out "$dir/ca.crt"
}

# issue <ca> <name> <CN> <ext section> [extra `openssl ca` args...]
issue() {
  local ca="$1" name="$2" cn="$3" ext="$4"; shift 4
  local dir="$work/$ca"
  newkey "$work/$name.key"
  run openssl req -new -key "$work/$name.key" -subj "/O=coffer test/CN=$cn" -out "$work/$name.csr"
  run openssl ca -batch -notext -config "$dir/ca.cnf" -extfile "$work/ext.cnf" -extensions "$ext" \
    -in "$work/$name.csr" -out "$work/$name.crt" "$@"
}

make_ca ca coffer-dev-ca
make_ca other-ca coffer-other-ca

issue ca server localhost server_ext
issue ca unit-web web01 web_ext
issue ca unit-admin admin client_ext
issue ca unit-other web02 client_ext
issue ca revoked revoked01 client_ext
issue ca expired expired01 client_ext -startdate 20200101000000Z -enddate 20200201000000Z
issue other-ca foreign web01 web_ext

run openssl ca -batch -config "$work/ca/ca.cnf" -gencrl -out "$work/ca-empty.crl"
run openssl ca -batch -config "$work/other-ca/ca.cnf" -gencrl -out "$work/other-ca.crl"
run openssl ca -config "$work/ca/ca.cnf" -revoke "$work/revoked.crt" -crl_reason keyCompromise
run openssl ca -batch -config "$work/ca/ca.cnf" -gencrl -out "$work/ca.crl"

# Install: certificates 0644, keys 0600, atomically per file.
install_file() {  # <src> <dst name> <mode>
  cp "$1" "$work/.tmp-install"
  chmod "$3" "$work/.tmp-install"
  mv -f "$work/.tmp-install" "$outdir/$2"
}
install_file "$work/other-ca/ca.key" other-ca.key 0600
install_file "$work/other-ca/ca.crt" other-ca.crt 0644
install_file "$work/ca.crl" ca.crl 0644
install_file "$work/ca-empty.crl" ca-empty.crl 0644
install_file "$work/other-ca.crl" other-ca.crl 0644
for name in server unit-web unit-admin unit-other revoked expired foreign; do
  install_file "$work/$name.key" "$name.key" 0600
  install_file "$work/$name.crt" "$name.crt" 0644
  if [[ "$name" != server ]]; then
    cat "$work/$name.crt" "$work/$name.key" >"$work/$name.pem"
    install_file "$work/$name.pem" "$name.pem" 0600
  fi
done
install_file "$work/ca/ca.key" ca.key 0600
# ca.crt last: its presence is what marks the directory as complete.
install_file "$work/ca/ca.crt" ca.crt 0644
