"""``python -m localcloud.logging [HOST:PORT]``: serve only the Cloud Logging emulator (default: $LOGGING_EMULATOR_HOST).
Prints ``logging ready: HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import sys

from localcloud.logging.server import start
from localcloud.runtime import serve_one


def main(argv: list[str]) -> int:
    return serve_one(start, "logging", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
