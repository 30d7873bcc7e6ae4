# Shared helpers for scripts/dev and scripts/test. Source it; do not run it.
# Every install is idempotent and cached under $HOME, so only the first run
# on a machine is slow (measured cold on 2 cores: cargo-leptos ~17 min,
# tansu ~13 min, wasm-bindgen-cli ~4 min, Chromium ~1 min).

CARGO_LEPTOS_VERSION=0.3.11
WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen pin in Cargo.toml
TANSU_VERSION=0.6.0
TANSU_ROOT="${TANSU_ROOT:-$HOME/.cache/tansu-$TANSU_VERSION}"
TANSU_BIN="$TANSU_ROOT/bin/tansu"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1;34m[herald]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_rust_tools() {
  # librdkafka is built with TLS and SASL SCRAM: it links the system OpenSSL.
  if ! pkg-config --exists openssl 2>/dev/null; then
    say "installing OpenSSL headers and pkg-config from Debian (first time only)"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libssl-dev pkg-config
  fi
  if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (first time only, ~17 min on 2 cores)"
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --ignore-rust-version
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (first time only, ~4 min)"
    # No --locked: its lock file does not build with this toolchain.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

ensure_tansu() {
  if ! "$TANSU_BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    say "installing the tansu Kafka broker $TANSU_VERSION (first time only, ~13 min)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql --root "$TANSU_ROOT"
  fi
  export TANSU_BIN
}

ensure_chromium() {
  if ! command -v chromium >/dev/null; then
    say "installing Chromium from Debian (first time only, ~1 min)"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  fi
}

ensure_playwright() {
  if [ ! -d end2end/node_modules/@playwright/test ]; then
    say "installing Playwright (npm, browser download skipped: Debian's Chromium is used)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_port PORT SECONDS
wait_for_port() {
  local port=$1 deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.2
  done
}

# start_broker PORT DATA_DIR LOG: start tansu (sqlite engine) in the
# background, wait until it listens, and set BROKER_PID.
start_broker() {
  local port=$1 dir=$2 log=$3
  mkdir -p "$dir"
  # In a session of its own, so a Ctrl-C meant for Herald does not stop the
  # broker first (Herald commits offsets on the way out); the caller stops it.
  (cd "$dir" && exec setsid "$TANSU_BIN" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine sqlite://tansu.db) >"$log" 2>&1 &
  BROKER_PID=$!
  if ! wait_for_port "$port" 30; then
    say "the broker did not start; its log:"; tail -n 40 "$log" >&2
    return 1
  fi
  say "tansu broker on 127.0.0.1:$port (pid $BROKER_PID, data in $dir)"
}

ensure_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    say "installing PostgreSQL from Debian (first time only, ~1 min)"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
  fi
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  export PGBIN
}

# pg_as_owner CMD...: run a PostgreSQL tool as the data directory's owner
# (PostgreSQL refuses to run as root; as root, use the `postgres` account).
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres PORT DIR: a private PostgreSQL server for this run (data in
# DIR/data, socket in DIR, listening on 127.0.0.1:PORT only, trust auth for
# the user `herald`); sets PG_DIR. Stop it with stop_postgres.
start_postgres() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    # Every parent must be searchable by `postgres` (mktemp makes 0700).
    local d=$dir
    while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
    chown postgres "$dir"
  fi
  if [ ! -s "$dir/data/PG_VERSION" ]; then
    pg_as_owner "$PGBIN/initdb" -D "$dir/data" -A trust -U herald >/dev/null
  fi
  pg_as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=${PG_FSYNC:-on}" >/dev/null
  PG_DIR=$dir
  say "PostgreSQL on 127.0.0.1:$port (data in $dir/data)"
}

stop_postgres() {
  [ -n "${PG_DIR:-}" ] || return 0
  pg_as_owner "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  PG_DIR=
}

# cpu_ticks PID...: user+system clock ticks of the processes so far.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# write_send_workload FILE: the cost issue's wrk script (POST /send, form
# body, Bruno to Emma, Rick and Lena in turn), shared by bench-cost and
# bench-go-design so that both designs get the same requests.
write_send_workload() {
  cat >"$1" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local to = { 1, 3, 4 }
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, "/send", nil, "fromID=2&toID=" .. to[i % 3 + 1] .. "&message=wrk+send+" .. i)
end
LUA
}
