"""The local runner: ``deployment.env`` -> a running, provisioned local cloud with the three functions and
the demo participants as separate processes (``LocalStack``), and ``python -m localcloud up``."""

from __future__ import annotations

from devstack.processes import ManagedProcess, ProcessError, ProcessSpec, stop_all
from devstack.provision import FunctionUrls, Provisioned, ProvisionError
from devstack.settings import DeploymentSettings, SettingsFileError, load_settings, parse_env_file
from devstack.stack import LocalStack, ResultEvent, StackPorts

__all__ = [
    "DeploymentSettings",
    "FunctionUrls",
    "LocalStack",
    "ManagedProcess",
    "ProcessError",
    "ProcessSpec",
    "ProvisionError",
    "Provisioned",
    "ResultEvent",
    "SettingsFileError",
    "StackPorts",
    "load_settings",
    "parse_env_file",
    "stop_all",
]
