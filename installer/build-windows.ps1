# Build the Windows bundle: installer\dist\tlstudio\tlstudio.exe (the app and the CLI).
# Written for Windows 10/11 x64 with Python 3.11 from python.org (`py -3.11`); not run on the
# development machine, which is Linux. TensorFlow on native Windows is CPU-only (its GPU needs WSL2).
$ErrorActionPreference = "Stop"
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$root = Split-Path -Parent $here
py -3.11 -m venv "$here\build\venv"
& "$here\build\venv\Scripts\Activate.ps1"
pip install --quiet -c "$here\requirements.lock" "pyinstaller>=6.10" "$root[export]"  # (lock.sh)
pip install --quiet --no-deps --force-reinstall "$root"
pyinstaller --noconfirm --clean --log-level WARN --distpath "$here\dist" --workpath "$here\build\work" `
  "$here\tlstudio.spec"
$exe = "$here\dist\tlstudio\tlstudio.exe"
& $exe --version
$work = Join-Path $env:TEMP "tlstudio-bundle-check"
& $exe demo --out "$work\demo"
if ($LASTEXITCODE -ne 0) { throw "the bundle's demo failed" }
"bundle: $here\dist\tlstudio"
