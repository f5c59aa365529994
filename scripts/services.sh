#!/usr/bin/env bash
# Starts the servers the storage tests run against, idempotently:
#   - PostgreSQL (Debian's package), a private cluster in target/services/pg
#     listening on 127.0.0.1:54329 with trust auth, database `inferix`, for
#     plaintext and TLS sessions (a private CA and a server certificate for
#     localhost/127.0.0.1, made once in target/services/pg-tls);
#   - an S3-compatible server (moto, from PyPI) on 127.0.0.1:9000 with the
#     bucket `inferix-test`.
# Servers already answering are left alone. The connection settings are
# written to target/services/env (for `source`) and printed as exports.
#
# Ports and names can be overridden with INFERIX_PG_PORT, INFERIX_S3_PORT
# and INFERIX_S3_BUCKET.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT="${INFERIX_PG_PORT:-54329}"
S3_PORT="${INFERIX_S3_PORT:-9000}"
S3_BUCKET="${INFERIX_S3_BUCKET:-inferix-test}"
SERVICES_DIR="$PWD/target/services"
PG_DATA="$SERVICES_DIR/pg"
PG_LOG="$SERVICES_DIR/pg.log"
PG_TLS="$SERVICES_DIR/pg-tls"
# The CA the TLS URL trusts: ours, or that of a server already running.
PG_CA="$PG_TLS/ca.pem"
S3_LOG="$SERVICES_DIR/moto.log"
# How long a server may take to answer after being started.
WAIT_SECONDS=60

mkdir -p "$SERVICES_DIR"

log() { echo "services: $*" >&2; }

# Runs "$@" every 0.2 s until it succeeds or WAIT_SECONDS pass.
wait_until() {
  local what="$1"
  shift
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "$what did not answer within ${WAIT_SECONDS}s"
      return 1
    fi
    sleep 0.2
  done
}

# --- PostgreSQL -------------------------------------------------------------

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [[ -x "$d/pg_ctl" && -x "$d/initdb" ]]; then
      echo "$d"
    fi
  done | sort -V | tail -n 1
}

install_postgres() {
  if [[ -n "$(pg_bin_dir)" ]]; then
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    log "PostgreSQL is not installed; run this script as root once (apt-get install postgresql)"
    exit 1
  fi
  log "installing PostgreSQL"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -o DPkg::Lock::Timeout=300
  apt-get install -y -o DPkg::Lock::Timeout=300 --no-install-recommends postgresql
  # The package starts a system cluster on 5432; this project uses its own.
  if command -v pg_ctlcluster >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    done
  fi
}

install_openssl() {
  if command -v openssl >/dev/null; then
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    log "openssl is not installed; run this script as root once (apt-get install openssl)"
    exit 1
  fi
  log "installing openssl"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -o DPkg::Lock::Timeout=300
  apt-get install -y -o DPkg::Lock::Timeout=300 --no-install-recommends openssl
}

# A private CA and a certificate it signs for localhost and 127.0.0.1,
# made once; server.pem is written last, so its presence means all are.
make_pg_tls() {
  if [[ -f "$PG_TLS/ca.pem" && -f "$PG_TLS/server.key" && -f "$PG_TLS/server.pem" ]]; then
    return
  fi
  install_openssl
  log "creating a test CA and server certificate in $PG_TLS"
  rm -rf "$PG_TLS"
  mkdir -p "$PG_TLS"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$PG_TLS/ca.key" -out "$PG_TLS/ca.pem" \
    -days 3650 -subj "/CN=inferix test CA" 2>/dev/null
  openssl req -new "${ec[@]}" -keyout "$PG_TLS/server.key" -out "$PG_TLS/server.csr" \
    -subj "/CN=localhost" 2>/dev/null
  printf '%s\n' \
    'basicConstraints = critical, CA:FALSE' \
    'keyUsage = critical, digitalSignature, keyEncipherment' \
    'extendedKeyUsage = serverAuth' \
    'subjectAltName = DNS:localhost, IP:127.0.0.1' >"$PG_TLS/server.ext"
  openssl x509 -req -in "$PG_TLS/server.csr" -CA "$PG_TLS/ca.pem" -CAkey "$PG_TLS/ca.key" \
    -CAcreateserial -days 3650 -extfile "$PG_TLS/server.ext" \
    -out "$PG_TLS/server.pem.new" 2>/dev/null
  rm -f "$PG_TLS/server.csr" "$PG_TLS/server.ext"
  chmod 600 "$PG_TLS/ca.key" "$PG_TLS/server.key"
  mv "$PG_TLS/server.pem.new" "$PG_TLS/server.pem"
}

# Turns TLS on in the cluster's configuration; plaintext stays allowed
# (trust auth covers both). Appended once, to new clusters and to those
# made by older runs of this script alike.
configure_pg_tls() {
  # The server reads its key as its own user and refuses one others can.
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres: "$PG_TLS/server.key"
  fi
  chmod 600 "$PG_TLS/server.key"
  if ! grep -q '^# inferix TLS$' "$PG_DATA/postgresql.conf"; then
    printf '%s\n' \
      '# inferix TLS' \
      'ssl = on' \
      "ssl_cert_file = '$PG_TLS/server.pem'" \
      "ssl_key_file = '$PG_TLS/server.key'" >>"$PG_DATA/postgresql.conf"
  fi
}

pg_ssl_on() {
  [[ "$("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc "SHOW ssl")" == on ]]
}

# Runs a command as the cluster's owner: `postgres` refuses to run as root.
as_pg_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_ready() {
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres
}

start_postgres() {
  install_postgres
  PG_BIN="$(pg_bin_dir)"
  make_pg_tls
  if pg_ready; then
    log "PostgreSQL already answers on 127.0.0.1:$PG_PORT"
    if pg_ssl_on; then
      # A server started by another checkout has that checkout's CA beside
      # its certificate: trust that one.
      local cert
      cert="$("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
        "SHOW ssl_cert_file")"
      if [[ -f "$(dirname "$cert")/ca.pem" ]]; then
        PG_CA="$(dirname "$cert")/ca.pem"
      fi
    else
      # Started before TLS was configured: the settings apply on reload.
      log "turning TLS on in the running PostgreSQL"
      configure_pg_tls
      "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qtAc \
        "SELECT pg_reload_conf()" >/dev/null
      wait_until "PostgreSQL with TLS" pg_ssl_on || {
        tail -n 20 "$PG_LOG" >&2
        exit 1
      }
    fi
  else
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
      log "creating the cluster in $PG_DATA"
      rm -rf "$PG_DATA"
      mkdir -p "$PG_DATA"
      if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$PG_DATA"
        # The owner must be able to reach its data directory.
        local d="$PG_DATA"
        while d="$(dirname "$d")" && [[ "$d" != / ]]; do
          chmod o+x "$d"
        done
      fi
      chmod 700 "$PG_DATA"
      as_pg_owner "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust --username=postgres \
        --encoding=UTF8 --no-locale >/dev/null
      cat >>"$PG_DATA/postgresql.conf" <<EOF
# inferix test cluster
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DATA'
max_connections = 300
# Test data is disposable: trade durability for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fi
    configure_pg_tls
    touch "$PG_LOG"
    if [[ "$(id -u)" == 0 ]]; then
      chown postgres: "$PG_LOG"
    fi
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    # A stale pid file from a killed server would stop pg_ctl.
    if [[ -f "$PG_DATA/postmaster.pid" ]] && ! as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
      rm -f "$PG_DATA/postmaster.pid"
    fi
    as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -o "-p $PG_PORT" start >/dev/null
    wait_until "PostgreSQL" pg_ready || {
      tail -n 20 "$PG_LOG" >&2
      exit 1
    }
  fi
  if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'inferix'" | grep -q 1; then
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE inferix"
  fi
}

# --- S3 (moto) --------------------------------------------------------------

s3_ready() {
  python3 - "$S3_PORT" <<'EOF'
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2).read()
EOF
}

start_s3() {
  if s3_ready 2>/dev/null; then
    log "S3 server already answers on 127.0.0.1:$S3_PORT"
  else
    if ! python3 -c "import moto.server, flask_cors" >/dev/null 2>&1; then
      log "installing moto[server]"
      python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
    fi
    log "starting the S3 server on 127.0.0.1:$S3_PORT"
    # setsid: the server outlives this script and the test run's shell.
    setsid python3 -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$S3_LOG" 2>&1 </dev/null &
    echo $! >"$SERVICES_DIR/moto.pid"
    wait_until "the S3 server" s3_ready || {
      tail -n 20 "$S3_LOG" >&2
      exit 1
    }
  fi
  # Creating an existing bucket is refused harmlessly; moto needs no signature.
  python3 - "$S3_PORT" "$S3_BUCKET" <<'EOF'
import sys, urllib.request, urllib.error
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/{sys.argv[2]}", method="PUT")
try:
    urllib.request.urlopen(req, timeout=10).read()
except urllib.error.HTTPError as e:
    if e.code != 409:
        raise
EOF
}

start_postgres
start_s3

cat >"$SERVICES_DIR/env" <<EOF
export INFERIX_TEST_PG_URL=postgres://postgres@127.0.0.1:$PG_PORT/inferix
export INFERIX_TEST_PG_TLS_URL='postgres://postgres@127.0.0.1:$PG_PORT/inferix?sslmode=verify-full&sslrootcert=$PG_CA'
export INFERIX_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export INFERIX_TEST_S3_BUCKET=$S3_BUCKET
export INFERIX_TEST_S3_REGION=us-east-1
export INFERIX_TEST_S3_ACCESS_KEY_ID=test
export INFERIX_TEST_S3_SECRET_ACCESS_KEY=test
EOF
cat "$SERVICES_DIR/env"
