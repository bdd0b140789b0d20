"""``python -m devstack``: the saga stack on the local cloud.

python -m devstack up [--auto-ports]    the emulators, the three functions and the demo participants, until Ctrl-C
python -m devstack demo                 three sagas end to end, with their timelines

``python -m localcloud up`` and ``python -m localcloud demo`` hand over to these, so both spellings work.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("up", "demo"):
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    if command == "demo":
        from devstack.demo import main as demo_main

        return demo_main(rest)
    from devstack.up import main as up_main

    return up_main(rest)


if __name__ == "__main__":
    sys.exit(main())
