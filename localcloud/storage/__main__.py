"""``python -m localcloud.storage [HOST:PORT]``: serve only the Cloud Storage emulator (default:
$STORAGE_EMULATOR_HOST). Prints ``storage ready: HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import sys

from localcloud.runtime import serve_one
from localcloud.storage.server import start


def main(argv: list[str]) -> int:
    return serve_one(start, "storage", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
