"""``python -m localcloud.resourcemanager [HOST:PORT]``: serve only the Resource Manager emulator (default:
$RESOURCE_MANAGER_EMULATOR_HOST). Prints ``resourcemanager ready: HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import sys

from localcloud.resourcemanager.server import start
from localcloud.runtime import serve_one


def main(argv: list[str]) -> int:
    return serve_one(start, "resourcemanager", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
