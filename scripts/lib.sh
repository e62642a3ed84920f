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

ensure_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then return; fi
  echo "==> installing cargo-nextest" >&2
  cargo install --locked cargo-nextest >/dev/null
}
