"""The bundle's entry point: ``tlstudio`` as installed, plus ``-m MODULE`` for the bundle itself.

TL Studio runs some work in a fresh process as ``sys.executable -m MODULE`` (an export's runtime
check, TensorBoard). In a PyInstaller bundle ``sys.executable`` is this program, so it answers
``-m`` the way Python would.
"""

import sys

if len(sys.argv) > 2 and sys.argv[1] == "-m":
    import runpy

    module = sys.argv[2]
    sys.argv = [sys.argv[0], *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    sys.exit(0)

from tlstudio.__main__ import main

main()
