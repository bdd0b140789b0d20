"""``python -m localcloud.bigquery [HOST:PORT]``: serve only the BigQuery emulator (default:
$BIGQUERY_EMULATOR_HOST). Prints ``bigquery ready: HOST:PORT`` once it accepts connections."""

from __future__ import annotations

import sys

from localcloud.bigquery.server import start
from localcloud.runtime import serve_one


def main(argv: list[str]) -> int:
    return serve_one(start, "bigquery", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
