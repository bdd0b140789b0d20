"""Test support shared by every test suite: one ``eventually``, one recording HTTP server, one TLS helper.

Runtime packages (``shared/saga_orchestrator``, ``localcloud``, ``devstack``) never import from here; the
import-boundary test holds them to it."""
