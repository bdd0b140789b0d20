"""Barrier stores: ``SQLiteStore`` (the default; a file or memory) and ``PostgresStore`` (psycopg 3).
Any object with the shape of ``saga_participant.barrier.BarrierStore`` will do for another database."""

from __future__ import annotations

from importlib import resources

from saga_participant.stores.sqlite import SQLiteStore


def migration(dialect: str, version: int = 1) -> str:
    """The text of a bundled schema migration (``dialect``: ``postgresql`` or ``sqlite``)."""
    folder = resources.files("saga_participant") / "migrations" / dialect
    matches = [entry for entry in folder.iterdir() if entry.name.startswith(f"{version:04d}_")]
    if not matches:
        raise LookupError(f"no migration {version} for {dialect}")
    return matches[0].read_text(encoding="utf-8")


__all__ = ["SQLiteStore", "migration"]
