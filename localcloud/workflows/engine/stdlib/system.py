"""``sys.*``, ``events.*`` and ``retry.*``: the functions that reach the host (clock, log, callbacks).

https://cloud.google.com/workflows/docs/reference/stdlib/sys/get_env ,
https://cloud.google.com/workflows/docs/reference/stdlib/events/await_callback ,
https://cloud.google.com/workflows/docs/reference/syntax/retrying
"""

from __future__ import annotations

from typing import Any

from localcloud.workflows.engine.host import DEFAULT_CALLBACK_TIMEOUT_SECONDS, Host
from localcloud.workflows.engine.stdlib.registry import CONSTANTS, builtin
from localcloud.workflows.engine.stdlib.timefmt import parse_time
from localcloud.workflows.lang.ast import FunctionRef
from localcloud.workflows.lang.errors import WorkflowError
from localcloud.workflows.lang.values import is_number, type_error, type_name

SEVERITIES = frozenset(
    {"DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"}
)
CALLBACK_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


@builtin("sys.log", blocking=True)
def log(
    host: Host,
    data: Any = None,
    severity: Any = "DEFAULT",
    text: Any = None,
    json_: Any = None,
    timestamp: Any = None,
) -> None:
    if not isinstance(severity, str) or severity.upper() not in SEVERITIES:
        raise WorkflowError.tagged("ValueError", f"sys.log: unknown severity {severity!r}")
    payload = data if data is not None else (text if text is not None else json_)
    host.log(severity.upper(), payload)


@builtin("sys.get_env")
def get_env(host: Host, name: Any, default: Any = None) -> Any:
    if not isinstance(name, str):
        raise type_error(f"sys.get_env: name must be a string, got {type_name(name)}")
    if default is not None and not isinstance(default, str):
        raise type_error(f"sys.get_env: default must be a string, got {type_name(default)}")
    builtins = host.info.builtin_env()
    if name in builtins:
        return builtins[name]
    return host.info.user_env.get(name, default)


@builtin("sys.now")
def now(host: Host) -> float:
    return float(host.clock.now())


def _seconds(name: str, value: Any) -> float:
    if not is_number(value):
        raise type_error(f"{name}: expected a number of seconds, got {type_name(value)}")
    if value < 0:
        raise WorkflowError.tagged("ValueError", f"{name}: seconds must not be negative")
    return float(value)


@builtin("sys.sleep", blocking=True)
async def sleep(host: Host, seconds: Any) -> None:
    await host.clock.sleep(_seconds("sys.sleep", seconds))


@builtin("sys.sleep_until", blocking=True)
async def sleep_until(host: Host, time: Any) -> None:
    if not isinstance(time, str):
        raise type_error(f"sys.sleep_until: time must be a string, got {type_name(time)}")
    await host.clock.sleep(max(0.0, parse_time(time) - host.clock.now()))


@builtin("events.create_callback_endpoint", blocking=True)
async def create_callback_endpoint(host: Host, http_callback_method: Any = "POST") -> Any:
    if not isinstance(http_callback_method, str):
        raise type_error("events.create_callback_endpoint: http_callback_method must be a string")
    if http_callback_method.upper() not in CALLBACK_METHODS:
        raise WorkflowError.tagged(
            "ValueError", f"events.create_callback_endpoint: unsupported method {http_callback_method!r}"
        )
    return await host.create_callback_endpoint(http_callback_method.upper())


@builtin("events.await_callback", blocking=True)
async def await_callback(host: Host, callback: Any, timeout: Any = DEFAULT_CALLBACK_TIMEOUT_SECONDS) -> Any:
    if not isinstance(callback, dict) or not isinstance(callback.get("url"), str):
        raise type_error("events.await_callback: callback must be the map create_callback_endpoint returned")
    return await host.await_callback(callback, _seconds("events.await_callback", timeout))


@builtin("retry.always")
def always(host: Host, e: Any) -> bool:
    return True


@builtin("retry.never")
def never(host: Host, e: Any) -> bool:
    return False


CONSTANTS["retry.default_backoff"] = {"initial_delay": 1, "max_delay": 60, "multiplier": 1.25}
CONSTANTS["http.default_retry"] = {
    "predicate": FunctionRef("http.default_retry_predicate"),
    "max_retries": 5,
    "backoff": CONSTANTS["retry.default_backoff"],
}
CONSTANTS["http.default_retry_non_idempotent"] = {
    "predicate": FunctionRef("http.default_retry_predicate_non_idempotent"),
    "max_retries": 5,
    "backoff": CONSTANTS["retry.default_backoff"],
}
