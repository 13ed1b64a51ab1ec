"""`python -m tlstudio` and the `tlstudio` script."""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point: no arguments opens the desktop app once it exists, else runs the CLI."""
    from tlstudio.cli import main as cli_main

    sys.exit(cli_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
