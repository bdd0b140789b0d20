"""``deployment.env``: the one description of a deployment, read by the local runner as ``deploy.sh`` reads it.

Format: ``KEY=VALUE`` lines; blank lines and lines starting with ``#`` are ignored; no quotes, no shell
expansion (a value is everything after the first ``=``, with surrounding blanks removed). Keys are
``[A-Z_][A-Z0-9_]*``. Every key of the file can be overridden by an environment variable of the same name;
keys that are not in the file are not picked up from the environment.
"""

from __future__ import annotations

import os
import re
import sysconfig
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _root() -> Path:
    """The clone this runs from, or the data directory ``pip install .`` fills (``share/saga-orchestrator``
    under the environment's prefix): deployment.env, the workflow, the functions and the examples."""
    clone = Path(__file__).resolve().parents[1]
    if (clone / "deployment.env").is_file():
        return clone
    return Path(sysconfig.get_path("data")) / "share" / "saga-orchestrator"


REPO_ROOT = _root()
DEFAULT_PATH = REPO_ROOT / "deployment.env"

_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class SettingsFileError(ValueError):
    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


def parse_env_file(text: str, *, path: str = "deployment.env") -> dict[str, str]:
    """The ``KEY=VALUE`` pairs of ``text`` in file order; a repeated key keeps its last value."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise SettingsFileError(path, number, f"expected KEY=VALUE, got {line!r}")
        if not _KEY.match(key):
            raise SettingsFileError(path, number, f"{key!r} is not a valid key (A-Z, 0-9, _)")
        values[key] = value.strip()
    return values


@dataclass(frozen=True)
class DeploymentSettings(Mapping[str, str]):
    """The settings of ``deployment.env`` after environment overrides, as a read-only mapping."""

    data: Mapping[str, str]
    source: str = field(default=str(DEFAULT_PATH))

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> DeploymentSettings:
        file = Path(path) if path is not None else DEFAULT_PATH
        environment = os.environ if env is None else env
        values = parse_env_file(file.read_text(encoding="utf-8"), path=str(file))
        merged = {key: environment.get(key, value) for key, value in values.items()}
        return cls(data=merged, source=str(file))

    def __getitem__(self, key: str) -> str:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def with_values(self, values: Mapping[str, str]) -> DeploymentSettings:
        """A copy with some keys replaced or added (e.g. shorter backoffs for a test)."""
        return DeploymentSettings(data={**self.data, **values}, source=self.source)

    def require(self, key: str) -> str:
        value = self.data.get(key, "")
        if not value:
            raise KeyError(f"{self.source} has no value for {key}")
        return value

    def saga_env(self) -> dict[str, str]:
        """Every ``SAGA_*`` key: the environment each function gets, unchanged."""
        return {key: value for key, value in self.data.items() if key.startswith("SAGA_")}

    @property
    def project_id(self) -> str:
        return self.require("SAGA_PROJECT_ID")

    @property
    def location(self) -> str:
        return self.require("SAGA_LOCATION")

    def service_account_email(self, key: str) -> str:
        """``SAGA_TASKS_INVOKER_SA=saga-tasks-invoker`` -> ``saga-tasks-invoker@<project>.iam.gserviceaccount.com``."""
        name = self.require(key)
        return name if "@" in name else f"{name}@{self.project_id}.iam.gserviceaccount.com"

    def secret_names(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.data.get("SAGA_SECRETS", "").split(",") if s.strip())

    def number(self, key: str) -> float:
        raw = self.require(key)
        try:
            return float(raw)
        except ValueError as error:
            raise ValueError(f"{self.source}: {key} must be a number, got {raw!r}") from error


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> DeploymentSettings:
    return DeploymentSettings.load(path, env)
