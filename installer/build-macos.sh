#!/usr/bin/env bash
# Build the macOS bundle: installer/dist/TL Studio.app and installer/dist/tlstudio/tlstudio (the CLI).
# Written for macOS 14 on Apple silicon (TensorFlow's wheels there are CPU-only; tensorflow-metal is
# not pinned); not run on the development machine, which is Linux. Unsigned: sign and notarise with
# `codesign --deep --options runtime` and `xcrun notarytool` before handing it out.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
build="$here/build"
python="${PYTHON:-python3}"
"$python" -m venv "$build/venv"
# shellcheck disable=SC1091
. "$build/venv/bin/activate"
pip install --quiet -c "$here/requirements.lock" "pyinstaller>=6.10" "$root[export]"  # (lock.sh)
pip install --quiet --no-deps --force-reinstall "$root"
rm -rf "$here/dist/tlstudio" "$here/dist/TL Studio.app"
pyinstaller --noconfirm --clean --log-level WARN --distpath "$here/dist" --workpath "$build/work" \
  "$here/tlstudio.spec"
work="$(mktemp -d)"
(cd "$work" && env -i HOME="$work" "$here/dist/tlstudio/tlstudio" --version \
  && env -i HOME="$work" "$here/dist/tlstudio/tlstudio" demo --out "$work/demo" >/dev/null)
echo "bundle: $here/dist/TL Studio.app ($(du -sh "$here/dist/TL Studio.app" | cut -f1))"
