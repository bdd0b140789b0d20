"""``python -m saga_participant.certify``: the same as ``saga certify``."""

from __future__ import annotations

import sys

from saga_participant.certify import main

if __name__ == "__main__":
    sys.exit(main())
