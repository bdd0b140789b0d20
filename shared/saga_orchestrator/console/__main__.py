"""``python -m saga_orchestrator.console``: the ``saga`` command."""

import sys

from saga_orchestrator.console.cli import main

sys.exit(main())
