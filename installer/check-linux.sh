#!/usr/bin/env bash
# Check a Linux bundle as a user without our Python would run it: an empty environment (env -i: no
# virtual environment, no Python on PATH), from a temporary folder.
#   installer/check-linux.sh [BUNDLE_DIR]      (default: installer/dist/tlstudio)
# Checks: --version and --help; `tlstudio demo` (inspect, train, export on the bundled sample data);
# the window under Xvfb (when Xvfb is installed), with the time to a mapped window and a screenshot.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bundle="$(cd "${1:-$here/dist/tlstudio}" && pwd)"
exe="$bundle/tlstudio"
work="$(mktemp -d /tmp/tlstudio-bundle-check.XXXXXX)"
cd "$work"
run() { env -i HOME="$work" "$@"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

run "$exe" --version
run "$exe" --help >/dev/null && echo "--help: ok"
started=$(date +%s%N)
run "$exe" demo --out "$work/demo" >"$work/demo.log" 2>&1 || { tail -20 "$work/demo.log"; exit 1; }
test -f "$work/demo/saved_model/saved_model.pb"
echo "demo: ok in $(( $(ms_since "$started") / 1000 )) s ($work/demo)"

if command -v Xvfb >/dev/null && command -v xdotool >/dev/null; then
  display=":$(( 90 + RANDOM % 9 ))"
  Xvfb "$display" -screen 0 1366x768x24 >/dev/null 2>&1 &
  xvfb=$!
  trap 'kill $xvfb 2>/dev/null || true' EXIT
  sleep 1
  started=$(date +%s%N)
  env -i HOME="$work" DISPLAY="$display" "$exe" >"$work/gui.log" 2>&1 &
  app=$!
  for _ in $(seq 1 300); do
    if DISPLAY="$display" xdotool search --onlyvisible --name "TL Studio" >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  DISPLAY="$display" xdotool search --onlyvisible --name "TL Studio" >/dev/null \
    || { echo "no window appeared"; cat "$work/gui.log"; kill $app; exit 1; }
  echo "window: mapped $(ms_since "$started") ms after start"
  sleep 3
  if command -v import >/dev/null; then
    DISPLAY="$display" import -window root "$work/window.png" && echo "screenshot: $work/window.png"
  fi
  kill $app
  wait $app 2>/dev/null || true
else
  echo "window: not checked (install xvfb and xdotool)"
fi
echo "bundle check passed: $bundle ($(du -sh "$bundle" | cut -f1))"
