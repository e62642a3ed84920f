# Shared helpers for scripts/start and scripts/test: install what siteward needs on Debian/Ubuntu.

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_chromium() {
  local chromium="${SITEWARD_CHROMIUM:-/usr/bin/chromium}"
  if [ -x "$chromium" ]; then return; fi
  echo "==> installing Chromium (Debian package 'chromium')" >&2
  if ! as_root apt-get install -y --no-install-recommends chromium >/dev/null; then
    as_root apt-get update >/dev/null
    as_root apt-get install -y --no-install-recommends chromium >/dev/null
  fi
  [ -x "$chromium" ] || { echo "Chromium is still missing at $chromium" >&2; exit 1; }
}

# Tests read the text of report PDFs with poppler's pdftotext.
ensure_pdftotext() {
  if command -v pdftotext >/dev/null 2>&1; then return; fi
  echo "==> installing poppler-utils (pdftotext)" >&2
  if ! as_root apt-get install -y --no-install-recommends poppler-utils >/dev/null; then
    as_root apt-get update >/dev/null
    as_root apt-get install -y --no-install-recommends poppler-utils >/dev/null
  fi
  command -v pdftotext >/dev/null 2>&1 || { echo "pdftotext is still missing" >&2; exit 1; }
}

ensure_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then return; fi
  echo "==> installing cargo-nextest" >&2
  cargo install --locked cargo-nextest >/dev/null
}

# PostgreSQL's server binaries (initdb, pg_ctl) for the embedded database of `siteward serve`.
ensure_postgres_binaries() {
  if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then return; fi
  echo "==> installing PostgreSQL (Debian package 'postgresql')" >&2
  if ! as_root apt-get install -y --no-install-recommends postgresql >/dev/null; then
    as_root apt-get update >/dev/null
    as_root apt-get install -y --no-install-recommends postgresql >/dev/null
  fi
}

# diesel CLI, to check that src/db/schema.rs matches the migrations.
ensure_diesel_cli() {
  if command -v diesel >/dev/null 2>&1; then return; fi
  if ! [ -e /usr/include/postgresql/libpq-fe.h ]; then
    echo "==> installing libpq-dev (for diesel CLI)" >&2
    as_root apt-get install -y --no-install-recommends libpq-dev >/dev/null \
      || { as_root apt-get update >/dev/null; as_root apt-get install -y --no-install-recommends libpq-dev >/dev/null; }
  fi
  echo "==> installing diesel CLI" >&2
  cargo install --locked diesel_cli --version '~2.3' --no-default-features --features postgres >/dev/null
}

# A PostgreSQL server for the integration tests. Uses SITEWARD_TEST_DATABASE_URL if set, else a
# server answering on 127.0.0.1:5432 as user postgres without a password, else starts a private
# throwaway cluster (trust auth, loopback only) and exports its URL.
ensure_test_database() {
  if [ -n "${SITEWARD_TEST_DATABASE_URL:-}" ]; then return; fi
  if command -v psql >/dev/null 2>&1 \
    && psql "postgres://postgres@127.0.0.1:5432/postgres" -qtAc 'SELECT 1' >/dev/null 2>&1; then
    export SITEWARD_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    return
  fi
  ensure_postgres_binaries
  local bin dir port=55432
  bin="$(dirname "$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
  dir="${TMPDIR:-/tmp}/siteward-test-postgres"
  local run=()
  if [ "$(id -u)" -eq 0 ]; then run=(runuser -u postgres --); fi
  if ! [ -e "$dir/PG_VERSION" ]; then
    echo "==> creating a throwaway PostgreSQL cluster for the tests in $dir" >&2
    mkdir -p "$dir"; chmod 700 "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    "${run[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
  fi
  if ! "${run[@]}" "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    "${run[@]}" "$bin/pg_ctl" -D "$dir" -w -l "$dir/server.log" \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start >/dev/null
  fi
  export SITEWARD_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# s3s-fs: an S3-compatible server that checks request signatures, for the storage tests.
ensure_s3s_fs() {
  if command -v s3s-fs >/dev/null 2>&1; then return; fi
  echo "==> installing s3s-fs (S3-compatible test server)" >&2
  cargo install --locked s3s-fs@0.14.1 --features binary >/dev/null
}

# Open-source packages the fixture sites serve (bot detector, consent managers), installed from
# the npm registry into a folder outside the repository; their code is not committed. Exports
# SITEWARD_FIXTURE_PACKAGES (the node_modules folder) for the tests and benchmarks.
FIXTURE_PACKAGES=(
  "@fingerprintjs/botd@2.0.0"
  "vanilla-cookieconsent@3.1.0"
  "klaro@0.7.22"
  "cookieconsent@3.1.1"
  "tarteaucitronjs@1.34.0"
  "cookie-though@1.7.3"
  "cookies-eu-banner@3.0.0"
  "react@18.3.1"
  "react-dom@18.3.1"
  "react-router-dom@6.28.0"
)
ensure_fixture_packages() {
  local dir="${SITEWARD_FIXTURE_PACKAGES_HOME:-$HOME/.cache/siteward-fixture-packages}"
  local stamp="$dir/.installed"
  local want="${FIXTURE_PACKAGES[*]}"
  export SITEWARD_FIXTURE_PACKAGES="$dir/node_modules"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "==> installing npm (Debian package 'npm')" >&2
    if ! as_root apt-get install -y --no-install-recommends npm >/dev/null; then
      as_root apt-get update >/dev/null
      as_root apt-get install -y --no-install-recommends npm >/dev/null
    fi
  fi
  echo "==> installing the fixture sites' npm packages into $dir" >&2
  mkdir -p "$dir"
  # --ignore-scripts: nothing from the registry runs here; the packages are only served.
  npm install --prefix "$dir" --no-save --no-audit --no-fund --ignore-scripts "${FIXTURE_PACKAGES[@]}" >&2
  echo "$want" > "$stamp"
}

# A fresh Python virtual environment at $1 (Debian's python3-venv installed when missing).
make_python_venv() {
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
    echo "==> installing python3-venv (Debian package)" >&2
    if ! as_root apt-get install -y --no-install-recommends python3-venv >/dev/null; then
      as_root apt-get update >/dev/null
      as_root apt-get install -y --no-install-recommends python3-venv >/dev/null
    fi
  fi
  rm -rf "$1"
  python3 -m venv "$1"
}

# What the HAR tests check exported files with: the HAR 1.2 JSON Schema (npm's har-schema), and
# from PyPI jsonschema to validate against it and haralyzer to read the file as a HAR tool does.
# Needs npm (see ensure_fixture_packages). Exports SITEWARD_HAR_PYTHON and SITEWARD_HAR_SCHEMA.
HAR_SCHEMA_PACKAGE="har-schema@2.0.0"
HAR_PYTHON_PACKAGES=("jsonschema==4.26.0" "haralyzer==2.4.0")
ensure_har_tools() {
  local dir="${SITEWARD_HAR_TOOLS_HOME:-$HOME/.cache/siteward-har-tools}"
  local want="$HAR_SCHEMA_PACKAGE ${HAR_PYTHON_PACKAGES[*]}"
  export SITEWARD_HAR_PYTHON="$dir/venv/bin/python"
  export SITEWARD_HAR_SCHEMA="$dir/node_modules/har-schema/lib"
  if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$want" ]; then return; fi
  echo "==> installing the HAR checkers ($want) into $dir" >&2
  mkdir -p "$dir"
  make_python_venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "${HAR_PYTHON_PACKAGES[@]}" >&2
  npm install --prefix "$dir" --no-save --no-audit --no-fund --ignore-scripts "$HAR_SCHEMA_PACKAGE" >&2
  echo "$want" > "$dir/.installed"
}

# Python's `playwright` package (from PyPI) in its own virtual environment, for bench-checkout's
# yardstick: the single-page shop's journey in Playwright, driving the system Chromium (no browser
# download). Exports SITEWARD_PLAYWRIGHT_PYTHON.
PLAYWRIGHT_VERSION=1.65.3
ensure_playwright() {
  local dir="${SITEWARD_PLAYWRIGHT_HOME:-$HOME/.cache/siteward-playwright}"
  export SITEWARD_PLAYWRIGHT_PYTHON="$dir/bin/python"
  if "$SITEWARD_PLAYWRIGHT_PYTHON" -c "import playwright" >/dev/null 2>&1 \
    && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$PLAYWRIGHT_VERSION" ]; then return; fi
  echo "==> installing Playwright $PLAYWRIGHT_VERSION (PyPI) into $dir" >&2
  make_python_venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION" >&2
  echo "$PLAYWRIGHT_VERSION" > "$dir/.installed"
}

# EasyList and EasyPrivacy, the filter lists compliance scans classify requests with, as Debian
# ships them in the uBlock Origin package (scanner::classify::filter_lists::DEBIAN_LIST_FOLDER).
# A folder given in SITEWARD_FILTER_LISTS is used as it is.
ensure_filter_lists() {
  if [ -n "${SITEWARD_FILTER_LISTS:-}" ]; then return; fi
  local dir=/usr/share/chromium/extensions/ublock-origin/assets/thirdparties/easylist
  if [ -r "$dir/easylist.txt" ] && [ -r "$dir/easyprivacy.txt" ]; then return; fi
  echo "==> installing EasyList and EasyPrivacy (Debian package 'webext-ublock-origin-chromium')" >&2
  if ! as_root apt-get install -y --no-install-recommends webext-ublock-origin-chromium >/dev/null; then
    as_root apt-get update >/dev/null
    as_root apt-get install -y --no-install-recommends webext-ublock-origin-chromium >/dev/null
  fi
  [ -r "$dir/easyprivacy.txt" ] || { echo "EasyPrivacy is still missing at $dir/easyprivacy.txt" >&2; exit 1; }
}
