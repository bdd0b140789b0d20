"""Fixtures of the deploy tests: a copy of what deploy.sh reads, fake projects, one shared first deploy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.fake_cloud import PROJECT, REPO, SHIPPED, TOOLS, FakeCloud, FirstDeploy, initial_state


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what deploy.sh reads, so that files edited elsewhere while the tests run cannot make one
    deploy see other sources than the next."""
    root = tmp_path_factory.mktemp("checkout")
    for name in SHIPPED:
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    return root


@pytest.fixture
def cloud(tmp_path: Path, checkout: Path) -> FakeCloud:
    """An empty fake project; deploy.sh is told its id with --project."""
    return FakeCloud(tmp_path / "cloud", checkout).install(initial_state())


@pytest.fixture(scope="module")
def first_deploy(tmp_path_factory: pytest.TempPathFactory, checkout: Path) -> Iterator[FirstDeploy]:
    """One deploy of the default settings into an empty project, shared by the tests that only read it."""
    fake = FakeCloud(tmp_path_factory.mktemp("first") / "cloud", checkout).install(initial_state())
    result = fake.deploy("--project", PROJECT)
    yield FirstDeploy(fake, result, fake.calls(), fake.state())


@pytest.fixture
def deployed(first_deploy: FirstDeploy, tmp_path: Path) -> FakeCloud:
    """A fake project in the state the first deploy left, for a test to change or deploy again."""
    return FakeCloud(tmp_path / "again", first_deploy.cloud.checkout).install(first_deploy.state)


@pytest.fixture
def tools_only_path(tmp_path: Path) -> str:
    """A PATH with the tools deploy.sh uses and no gcloud."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in TOOLS:
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed")
        (tools / name).symlink_to(found)
    return str(tools)
