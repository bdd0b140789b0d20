"""``python -m localcloud.metadata [HOST:PORT]``: serve only the metadata emulator (default: $GCE_METADATA_HOST).
Prints ``metadata ready: HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import sys

from localcloud.metadata.server import start
from localcloud.runtime import serve_one


def main(argv: list[str]) -> int:
    return serve_one(start, "metadata", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
