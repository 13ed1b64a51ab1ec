"""`python -m tlstudio` and the `tlstudio` script."""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point: no arguments (or a project file) opens the desktop app; else the CLI."""
    args = sys.argv[1:]
    if not args or (len(args) == 1 and args[0].endswith(".tlstudio.json")):
        from tlstudio.gui.app import main as gui_main

        sys.exit(gui_main(args))
    from tlstudio.cli import main as cli_main

    sys.exit(cli_main(args))


if __name__ == "__main__":
    main()
