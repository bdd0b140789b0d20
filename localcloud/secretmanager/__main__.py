"""``python -m localcloud.secretmanager [HOST:PORT]``: serve only the Secret Manager emulator (default: $SECRET_MANAGER_EMULATOR_HOST).
Prints ``secretmanager ready: HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import sys

from localcloud.runtime import serve_one
from localcloud.secretmanager.server import start


def main(argv: list[str]) -> int:
    return serve_one(start, "secretmanager", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
