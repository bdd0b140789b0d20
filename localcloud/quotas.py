"""Google's documented rate quotas, enforced by the emulators when asked, so that a design which would hit
them in production fails here first.

``LOCALCLOUD_QUOTAS`` (read into ``LocalCloudConfig.quotas``) is a comma-separated list:

- unset, empty or ``off``: no limits (the default). Usage is still counted (``Quotas.usage``, served at
  ``GET http://$WORKFLOWS_HTTP_HOST/admin/quotas``), so a test can see, say, that starting sagas makes no
  Executions list call.
- ``google``: every quota below at Google's documented default.
- ``NAME=AMOUNT/WINDOW``: that quota at that value, e.g. ``workflows.executions.create=600/min``. WINDOW is
  ``s``, ``min`` or ``h``, optionally preceded by a number of them (``10s``, ``5min``). AMOUNT, at least 1,
  is in the quota's unit (requests, dispatches, kB). ``NAME=off`` lifts one quota. Items apply left to right:
  ``google,workflows.executions.create=30/min`` is Google's defaults with a low create quota;
  ``workflows.executions.list=1200/min`` alone limits only that.

Every bad item is reported at once (``QuotaConfigError``), naming the known quotas.

What is enforced, per key (Google charges a project per location; the local cloud has one of each, so the
keys are the project and location the request names, or the queue):

=============================== ============ ===================== ==================================
name                            default      key                   over quota
=============================== ============ ===================== ==================================
``workflows.executions.create`` 6,000/min    project/location      RESOURCE_EXHAUSTED (HTTP 429)
``workflows.executions.list``   1,200/min    project/location      RESOURCE_EXHAUSTED (HTTP 429)
``workflows.executions.get``    6,000/min    project/location      RESOURCE_EXHAUSTED (HTTP 429)
``tasks.dispatches``            500/s        queue                 the dispatch waits (never fails)
``pubsub.publish.kb``           12,000,000   project               RESOURCE_EXHAUSTED (HTTP 429)
                                kB/min
=============================== ============ ===================== ==================================

Values and sources, all read on 2026-12-06:

- Workflows, https://cloud.google.com/workflows/quotas (the Japanese edition, ``?hl=ja``, has the current
  table): "Execution API write requests", the create and cancel calls of all workflows (Eventarc-triggered
  executions included, which are retried by Eventarc's retry policy when over), 6,000 per minute per
  location; so ``CancelExecution`` is charged to ``workflows.executions.create`` too. "Execution API list
  requests" 1,200 and "Execution API get requests" 6,000 per minute per location. Over quota the Executions
  API answers HTTP 429 (gRPC RESOURCE_EXHAUSTED).
- Cloud Tasks, ``RateLimits.max_dispatches_per_second`` ("The maximum allowed value is 500",
  https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#ratelimits, as the client
  references quote it, e.g. https://cloud.google.com/php/docs/reference/cloud-tasks/1.14.4/V2.RateLimits):
  a queue dispatches at most 500 tasks a second. Cloud Tasks throttles a queue rather than failing its
  tasks: a dispatch over quota waits for the next slot, like the queue's own token bucket
  (``localcloud.tasks.dispatcher``).
- Pub/Sub, https://cloud.google.com/pubsub/quotas (read in its ``?hl=sv`` copy, English text):
  "Publisher throughput per region", 12,000,000 kB per minute (200 MB/s) in the large regions
  ``europe-west1``, ``us-central1`` and ``us-east1``, 3,000,000 kB per minute (50 MB/s) in the others;
  the default follows ``LOCALCLOUD_LOCATION``. Usage is the size of the published messages; over quota,
  Publish fails with RESOURCE_EXHAUSTED (HTTP 429,
  https://cloud.google.com/pubsub/docs/reference/error-codes), which the publisher clients retry.

Design: a *rolling* window per (quota, key): a call is admitted when the units admitted in the last
WINDOW seconds plus its own stay within AMOUNT. That is the strictest reading of "N per minute" (a fixed
window or a token bucket of the same size admits bursts of up to 2N across a boundary), so a rate held here
is held in production. Time comes from the emulators' ``Clock``, so tests move it by hand. The refusal text
follows Google's ("Quota exceeded for quota metric ... and limit ... of service ..."); the metric names
are the quotas pages' words, not necessarily Google's internal metric ids.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.api_core import exceptions as gexc

from localcloud.clock import Clock, SystemClock

EXECUTIONS_CREATE = "workflows.executions.create"
EXECUTIONS_LIST = "workflows.executions.list"
EXECUTIONS_GET = "workflows.executions.get"
TASKS_DISPATCHES = "tasks.dispatches"
PUBSUB_PUBLISH_KB = "pubsub.publish.kb"

MINUTE, SECOND, HOUR = 60.0, 1.0, 3600.0
# Pub/Sub's large regions (https://cloud.google.com/pubsub/quotas, read 2026-12-06).
PUBSUB_LARGE_REGIONS = frozenset({"europe-west1", "us-central1", "us-east1"})
# An admitted call joins the newest entry of its window when that entry began less than this share of the
# window earlier (the entry leaves the window with its last call, so no unit leaves early): memory stays
# bounded at a few thousand entries per key however many calls come.
_MERGE_SHARE = 1 / 2000


@dataclass(frozen=True)
class Limit:
    """``amount`` units per ``window`` seconds."""

    amount: float
    window: float

    def __str__(self) -> str:
        amount = str(int(self.amount)) if self.amount == int(self.amount) else f"{self.amount:g}"
        for seconds, unit in ((HOUR, "h"), (MINUTE, "min"), (SECOND, "s")):
            if self.window % seconds == 0:
                count = int(self.window // seconds)
                return f"{amount}/{'' if count == 1 else count}{unit}"
        return f"{amount}/{self.window:g}s"


@dataclass(frozen=True)
class Quota:
    """One documented quota: what Google calls it, its unit, and where its default is written."""

    name: str
    service: str
    metric: str
    limit_name: str
    unit: str
    source: str


QUOTAS: dict[str, Quota] = {
    q.name: q
    for q in (
        Quota(
            EXECUTIONS_CREATE,
            "workflowexecutions.googleapis.com",
            "Execution API write requests",
            "Execution API write requests per minute per location",
            "requests",
            "https://cloud.google.com/workflows/quotas",
        ),
        Quota(
            EXECUTIONS_LIST,
            "workflowexecutions.googleapis.com",
            "Execution API list requests",
            "Execution API list requests per minute per location",
            "requests",
            "https://cloud.google.com/workflows/quotas",
        ),
        Quota(
            EXECUTIONS_GET,
            "workflowexecutions.googleapis.com",
            "Execution API get requests",
            "Execution API get requests per minute per location",
            "requests",
            "https://cloud.google.com/workflows/quotas",
        ),
        Quota(
            TASKS_DISPATCHES,
            "cloudtasks.googleapis.com",
            "Task dispatches",
            "Task dispatches per second per queue",
            "dispatches",
            "https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#ratelimits",
        ),
        Quota(
            PUBSUB_PUBLISH_KB,
            "pubsub.googleapis.com",
            "Publisher throughput",
            "Publisher throughput per minute per region",
            "kB",
            "https://cloud.google.com/pubsub/quotas",
        ),
    )
}


def google_defaults(location: str = "us-central1") -> dict[str, Limit]:
    """Google's default for each quota of ``QUOTAS`` in ``location`` (sources in the module docstring)."""
    large = location in PUBSUB_LARGE_REGIONS
    return {
        EXECUTIONS_CREATE: Limit(6000, MINUTE),
        EXECUTIONS_LIST: Limit(1200, MINUTE),
        EXECUTIONS_GET: Limit(6000, MINUTE),
        TASKS_DISPATCHES: Limit(500, SECOND),
        PUBSUB_PUBLISH_KB: Limit(12_000_000 if large else 3_000_000, MINUTE),
    }


class QuotaConfigError(ValueError):
    """``LOCALCLOUD_QUOTAS`` has bad items; ``problems`` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "LOCALCLOUD_QUOTAS: " + "; ".join(problems) + f" (known quotas: {', '.join(sorted(QUOTAS))})"
        )


_WINDOW = re.compile(r"^(?P<count>\d+(?:\.\d+)?)?(?P<unit>s|min|h)$")
_UNITS = {"s": SECOND, "min": MINUTE, "h": HOUR}


def parse_limit(text: str) -> Limit:
    """``AMOUNT/WINDOW`` (``600/min``, ``10/5s``, ``2.5/s``) → a ``Limit``; ValueError when malformed. An
    AMOUNT below 1 is refused: a one-unit call (a dispatch, a request) would never fit."""
    amount_text, slash, window_text = text.strip().partition("/")
    match = _WINDOW.match(window_text.strip())
    try:
        amount = float(amount_text)
    except ValueError:
        amount = math.nan
    if not slash or match is None or not math.isfinite(amount) or amount < 1:
        raise ValueError(
            f"{text!r} is not AMOUNT/WINDOW, AMOUNT at least 1, WINDOW s, min or h (e.g. 600/min)"
        )
    count = float(match["count"]) if match["count"] else 1.0
    if count <= 0:
        raise ValueError(f"{text!r}: the window must be longer than 0")
    return Limit(amount, count * _UNITS[match["unit"]])


@dataclass(frozen=True)
class QuotaConfig:
    """The limits in force, by quota name; empty means none (``LOCALCLOUD_QUOTAS`` unset or ``off``)."""

    limits: Mapping[str, Limit] = field(default_factory=dict)

    @property
    def enforced(self) -> bool:
        return bool(self.limits)

    @classmethod
    def parse(cls, text: str, location: str = "us-central1") -> QuotaConfig:
        """``LOCALCLOUD_QUOTAS``'s value (syntax in the module docstring); raises ``QuotaConfigError``."""
        limits: dict[str, Limit] = {}
        problems: list[str] = []
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                continue
            if item == "off":
                limits.clear()
            elif item == "google":
                limits.update(google_defaults(location))
            elif "=" in item:
                name, _, value = (part.strip() for part in item.partition("="))
                if name not in QUOTAS:
                    problems.append(f"{item!r}: no quota {name!r}")
                elif value == "off":
                    limits.pop(name, None)
                else:
                    try:
                        limits[name] = parse_limit(value)
                    except ValueError as error:
                        problems.append(f"{name}: {error}")
            else:
                problems.append(f"{item!r} is neither off, google nor NAME=AMOUNT/WINDOW")
        if problems:
            raise QuotaConfigError(problems)
        return cls(limits)


class QuotaExceededError(gexc.ResourceExhausted):
    """A call over its quota: gRPC RESOURCE_EXHAUSTED, HTTP 429, as Google answers it."""

    def __init__(self, quota: Quota, key: str, limit: Limit) -> None:
        self.quota = quota
        self.key = key
        self.limit = limit
        super().__init__(
            f"Quota exceeded for quota metric '{quota.metric}' and limit '{quota.limit_name}' of service "
            f"'{quota.service}' for consumer '{key}' (local limit {limit} {quota.unit})."
        )


class _Window:
    """The units admitted in the last ``limit.window`` seconds, oldest first."""

    __slots__ = ("entries", "limit", "total")

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        # [first call, last call, units], oldest first
        self.entries: collections.deque[list[float]] = collections.deque()
        self.total = 0.0

    def _expire(self, now: float) -> None:
        horizon = now - self.limit.window
        entries = self.entries
        while entries and entries[0][1] <= horizon:
            self.total -= entries.popleft()[2]
        if not entries:
            self.total = 0.0

    def available_at(self, now: float, units: float) -> float:
        """The earliest time ``units`` fit (``now`` if they fit now; ``inf`` if they never can)."""
        self._expire(now)
        if units > self.limit.amount:
            return math.inf
        excess = self.total + units - self.limit.amount
        if excess <= 1e-9:
            return now
        for _, last, amount in self.entries:
            excess -= amount
            if excess <= 1e-9:
                return last + self.limit.window
        return now  # unreachable: every entry leaves the window eventually

    def admit(self, now: float, units: float) -> None:
        entries = self.entries
        if entries and now - entries[-1][0] < self.limit.window * _MERGE_SHARE:
            entries[-1][1] = max(entries[-1][1], now)
            entries[-1][2] += units
        else:
            entries.append([now, now, units])
        self.total += units


@dataclass
class Usage:
    """What one (quota, key) was asked for since start: calls and units admitted, calls refused."""

    calls: int = 0
    units: float = 0.0
    refused: int = 0


class Quotas:
    """The quotas of one local cloud (shared by the emulators of one process). Use from its event loop."""

    def __init__(self, config: QuotaConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or QuotaConfig()
        self.clock = clock or SystemClock()
        self._windows: dict[tuple[str, str], _Window] = {}
        self._usage: dict[tuple[str, str], Usage] = {}

    def _window(self, name: str, key: str) -> _Window | None:
        limit = self.config.limits.get(name)
        if limit is None:
            return None
        window = self._windows.get((name, key))
        if window is None:
            window = self._windows[name, key] = _Window(limit)
        return window

    def _used(self, name: str, key: str) -> Usage:
        usage = self._usage.get((name, key))
        if usage is None:
            usage = self._usage[name, key] = Usage()
        return usage

    def charge(self, name: str, key: str, units: float = 1.0) -> None:
        """Count one call of ``units`` against ``name`` for ``key``; raises ``QuotaExceededError`` (and
        counts nothing but the refusal) when it does not fit."""
        if not self.try_charge(name, key, units):
            limit = self.config.limits[name]
            raise QuotaExceededError(QUOTAS[name], key, limit)

    def try_charge(self, name: str, key: str, units: float = 1.0) -> bool:
        """``charge`` answering False instead of raising."""
        usage = self._used(name, key)
        window = self._window(name, key)
        if window is not None:
            now = self.clock.now()
            if window.available_at(now, units) > now:
                usage.refused += 1
                return False
            window.admit(now, units)
        usage.calls += 1
        usage.units += units
        return True

    def wait_seconds(self, name: str, key: str, units: float = 1.0) -> float:
        """How long until a call of ``units`` fits: 0.0 when it fits now, ``inf`` when it never can.
        Nothing is charged."""
        window = self._window(name, key)
        if window is None:
            return 0.0
        now = self.clock.now()
        return max(0.0, window.available_at(now, units) - now)

    def usage(self) -> dict[str, dict[str, dict[str, float | int | str | None]]]:
        """By quota name and key: the limit in force (None: none), calls and units admitted, calls
        refused. Served as JSON at ``/admin/quotas``."""
        report: dict[str, dict[str, dict[str, float | int | str | None]]] = {}
        for (name, key), used in sorted(self._usage.items()):
            limit = self.config.limits.get(name)
            report.setdefault(name, {})[key] = {
                "limit": None if limit is None else str(limit),
                "unit": QUOTAS[name].unit,
                "calls": used.calls,
                "units": round(used.units, 3),
                "refused": used.refused,
            }
        return report

    def describe(self) -> dict[str, str]:
        """The limits in force, ``{name: "6000/min"}`` (empty when quotas are off)."""
        return {name: str(limit) for name, limit in sorted(self.config.limits.items())}


def location_key(resource: str) -> str:
    """``projects/P/locations/L/...`` → ``P/L`` (what Google charges a per-location quota to)."""
    parts = resource.split("/")
    if len(parts) >= 4 and parts[0] == "projects" and parts[2] == "locations":
        return f"{parts[1]}/{parts[3]}"
    return resource


def project_key(resource: str) -> str:
    """``projects/P/...`` → ``P``."""
    parts = resource.split("/")
    return parts[1] if len(parts) >= 2 and parts[0] == "projects" else resource
