#!/usr/bin/env bash
# Write installer/requirements.lock: every package the bundle installs (TL Studio with the [export]
# extra, and PyInstaller), pinned, resolved for every platform and Python 3.11+ at once (uv's universal
# resolution: a package only one platform needs carries its marker). build-linux.sh, build-macos.sh and
# build-windows.ps1 install with it as pip constraints, so two builds of one commit get the same
# packages. Run it after changing the dependencies in pyproject.toml (needs uv: pip install uv).
#   installer/lock.sh [--upgrade]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
build_tools="$(mktemp)"
trap 'rm -f "$build_tools"' EXIT
grep -o '"pyinstaller[^"]*"' "$here/build-linux.sh" | tr -d '"' > "$build_tools"  # the one pin it names
# backports.strenum 1.3.1 (ai-edge-litert's) says Requires-Python <3.11, an upper bound that universal
# resolution does not read: pip then finds no version to install. Held below it.
echo "backports-strenum<1.3.1" >> "$build_tools"
cd "$root"
uv pip compile pyproject.toml "$build_tools" --extra export --universal --python-version 3.11 \
  --custom-compile-command "installer/lock.sh" --no-annotate -o "$here/requirements.lock" "$@"
