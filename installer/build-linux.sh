#!/usr/bin/env bash
# Build the one-folder Linux bundle: installer/dist/tlstudio/tlstudio (the app and the CLI).
#   installer/build-linux.sh            # CPU TensorFlow
#   TLSTUDIO_GPU=1 installer/build-linux.sh   # with TensorFlow's CUDA wheels (a larger bundle)
# It builds in its own virtual environment (installer/build/venv) from this checkout, installed as a
# wheel would be (not editable), then checks the bundle: --version, --help, and the package data.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
build="$here/build"
dist="$here/dist"
python="${PYTHON:-python3}"
started=$(date +%s)

"$python" -m venv "$build/venv"
# shellcheck disable=SC1091
. "$build/venv/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
extras="export"
if [ -n "${TLSTUDIO_GPU:-}" ]; then extras="export,gpu"; fi
# a clean copy of the sources as they are now (tracked and new files; setuptools' build/ folder in a
# checkout keeps files that were since deleted)
rm -rf "$build/source" && mkdir -p "$build/source"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$root" ls-files -co --exclude-standard | tar -C "$root" -cf - -T - | tar -C "$build/source" -xf -
else
  cp -r "$root/pyproject.toml" "$root/setup.py" "$root/README.md" "$root/tlstudio" "$root/resources" "$build/source/"
fi
pip install --quiet -c "$here/requirements.lock" "pyinstaller>=6.10" "$build/source[$extras]"  # (lock.sh)
pip install --quiet --no-deps --force-reinstall "$build/source"  # not a cached build of an older tree
rm -rf "$dist/tlstudio"
pyinstaller --noconfirm --clean --log-level WARN \
  --distpath "$dist" --workpath "$build/work" "$here/tlstudio.spec"

bundle="$dist/tlstudio"
echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1)), built in $(( $(date +%s) - started )) s"
"$here/check-linux.sh" "$bundle"
