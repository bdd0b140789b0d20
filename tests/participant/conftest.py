from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

if importlib.util.find_spec("saga_participant") is None:
    # Not installed into this environment: import the distribution from its folder in this repository.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "participant"))

import psycopg
import pytest
from saga_participant.stores.postgres import PostgresStore

from localcloud.auth import TokenAuthority
from tests.participant.servers import BackgroundLoop, Metadata, postgres_bin, postgres_cluster, start_metadata


@pytest.fixture(scope="session")
def background() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def metadata(background: BackgroundLoop) -> Iterator[Metadata]:
    server, stop = start_metadata(background, TokenAuthority())
    yield server
    stop()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    if postgres_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL (Debian package postgresql) must be installed in CI")
        pytest.skip("PostgreSQL's server programs are not installed (Debian package postgresql)")
    with postgres_cluster() as dsn:
        PostgresStore(dsn).migrate()
        yield dsn


@pytest.fixture
def postgres_store(postgres_dsn: str) -> Iterator[PostgresStore]:
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("TRUNCATE saga_barrier, saga_effect")
    yield PostgresStore(postgres_dsn)
