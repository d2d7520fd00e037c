"""``towerbox``: one console script; each command group belongs to its package.

The groups are found in the ``towerbox.commands`` entry-point group and imported only
when a command line names them, so ``towerbox vm list`` imports nothing of the
registry, the agent or the UI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from towerbox_core import __version__

# httpx imports its own command-line client, and with it rich, pygments and click,
# whenever those are installed: 6 MB of memory in every daemon and command that
# talks HTTP, for a client none of them runs. An empty entry makes that import fail,
# which httpx expects (it then offers a stub); set before any command group loads.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

_VALUE_OPTIONS = ("--config", "--url")


def _group_named(argv: Sequence[str]) -> str | None:
    """The first word that is not an option (nor a global option's value)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in in (["--version"], ["-V"]):
        sys.stdout.write(f"towerbox {__version__}\n")
        return 0
    from towerbox_cli.parser import build_parser

    parser = build_parser(_group_named(args_in))
    args = parser.parse_args(args_in)
    try:
        status: int = args.group.run(args)
    except KeyboardInterrupt:
        # Ctrl-C at a question or during a wait: what was sent is done, nothing else.
        sys.stderr.write("\ninterrupted\n")
        return 130
    except BrokenPipeError:
        # ``towerbox vm list | head``: the reader has what it wanted. Point stdout at
        # /dev/null so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main())
