"""The web console (``saga console``): the sagas of one saga workflow, one saga's timeline drawn as bars
over time, and buttons for the operator verbs. It reads and acts only through ``SagaOrchestrator``, as the
``saga`` command does, so it works on the local cloud and on a Google Cloud project alike.

Design decisions:

- **Server-rendered HTML**, one small static script and one stylesheet (``console/static/``); no build
  toolchain, nothing fetched from the network. The script polls a JSON endpoint: on the list page the
  answer carries the table rows rendered by the same Python code as the first page (one renderer, one
  place that escapes); on a saga page it carries a fingerprint of the saga, and the page reloads when it
  changes (unless the person is typing a reason).
- **Everything rendered is escaped** (``html.escape``): saga ids, step names, reasons, payloads and
  answers are user data. Bars are SVG rectangles positioned by attributes, so the Content-Security-Policy
  forbids inline scripts and styles altogether.
- **A verb takes two requests**: the form (a reason is required) leads to a confirmation page that says
  what will be sent; only its button sends the verb. That POST carries a token made at start (a page of
  another site cannot read it, so it cannot make a browser send a verb), and when the console listens on
  a loopback address it answers only to loopback ``Host`` names (a rebound DNS name cannot read it).
- **The timeline of an ended saga** comes from its result: each action's ``started_at``/``finished_at``;
  an action with several attempts is one bar marked with its count (the result does not keep each
  attempt's times); a wait for an operator's decision is drawn from the end of the action before it to the
  decision's ``at`` in the audit (a saga runs one action at a time, so the gap is the wait; a retried
  action's earlier, failed attempts fall inside it, their times being replaced by the retry's). A running
  saga has no times per step: its steps are drawn from their live progress, without a time axis.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import html
import json
import re
import secrets
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlencode

from aiohttp import web

from saga_orchestrator.errors import (
    InvalidRequestError,
    SagaError,
    SagaNotFoundError,
    SagaNotRunningError,
    VerbNotApplicableError,
)
from saga_orchestrator.sagas import SAGA_STATES, SagaView, answer_text
from saga_orchestrator.times import parse_time

STATIC_DIR = Path(__file__).with_name("static")
POLL_MILLISECONDS = 2000
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")

# The verbs a saga can take in each of its running states (the notices' verbs, plus the hard stop).
VERBS_BY_STATE: dict[str, tuple[str, ...]] = {
    "running": ("cancel", "terminate"),
    "parked": ("retry", "compensate", "cancel", "terminate"),
    "stuck": ("retry", "skip", "terminate"),
    "compensating": ("terminate",),
}
STEP_VERBS = ("retry", "skip")
VERB_TEXT = {
    "retry": "run again the action the saga waits on",
    "skip": "record the stuck compensation as done by hand (say how in the reason); the other undos go on",
    "compensate": "give the parked saga up: its done steps are undone as usual",
    "cancel": "stop the saga going forward and undo what it did",
    "terminate": "stop the saga where it is, undoing nothing: its effects stay in place",
}
WAITING_STATES = ("stuck", "parked")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SagaBackend(Protocol):
    """What the console reads and sends: ``SagaOrchestrator`` (the same calls as the ``saga`` command)."""

    workflow_path: str

    def get_saga_status(self, saga: str) -> SagaView: ...

    def read_saga(self, saga: str) -> tuple[SagaView, list[dict[str, Any]]]: ...

    def list_sagas(
        self, *, status: str | None = None, since: datetime.datetime | None = None, limit: int = 50
    ) -> list[SagaView]: ...

    def retry_step(self, saga: str, step: str, *, reason: str) -> str: ...

    def skip_step(self, saga: str, step: str, *, reason: str) -> str: ...

    def compensate_saga(self, saga: str, *, reason: str) -> str: ...

    def cancel_saga(self, saga: str, *, reason: str) -> str: ...

    def terminate_saga(self, saga: str, *, reason: str) -> str: ...


# --- the timeline as bars ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One row of a saga's timeline. ``kind``: execute, compensate, wait or not_run. ``start``/``end``:
    seconds since the saga started; None for a running saga's steps (no times known per step)."""

    step: str
    kind: str
    status: str
    start: float | None = None
    end: float | None = None
    attempts: int | None = None
    detail: str = ""


def _since(origin: datetime.datetime | None, value: Any) -> float | None:
    moment = parse_time(value)
    return None if origin is None or moment is None else max((moment - origin).total_seconds(), 0.0)


def timeline_bars(result: Mapping[str, Any]) -> tuple[list[Bar], float]:
    """The bars of an ended saga, from its result, in the order they started; and the span they cover
    (seconds from the saga's start to its end, or to the last bar's end)."""
    origin = parse_time(result.get("started_at"))
    bars: list[Bar] = []
    for step in result.get("steps") or []:
        if not isinstance(step, Mapping):
            continue
        name = str(step.get("name"))
        for kind in ("execute", "compensate"):
            action = step.get(kind)
            if isinstance(action, Mapping):
                attempts = action.get("attempts")
                bars.append(
                    Bar(
                        step=name,
                        kind=kind,
                        status=str(action.get("status")),
                        start=_since(origin, action.get("started_at")),
                        end=_since(origin, action.get("finished_at")),
                        attempts=attempts if isinstance(attempts, int) else None,
                        detail="" if action.get("status") == "succeeded" else answer_text(action) or "",
                    )
                )
        if step.get("status") == "not_run":
            bars.append(Bar(name, "not_run", "not_run", detail="not run: the saga stopped before it"))
    bars += _waits(bars, result.get("audit"), origin)
    bars.sort(key=lambda bar: (bar.start is None, bar.start or 0.0, bar.kind != "wait"))
    ends = [bar.end for bar in bars if bar.end is not None]
    span = _since(origin, result.get("finished_at")) or max(ends, default=0.0)
    return bars, max(span, *ends, 0.001)


def _waits(bars: Sequence[Bar], audit: Any, origin: datetime.datetime | None) -> list[Bar]:
    """A wait per operator decision on a step: from the end of the last action before it to its time."""
    waits = []
    for entry in audit if isinstance(audit, list) else []:
        if not isinstance(entry, Mapping) or entry.get("verb") not in ("retry", "skip", "compensate"):
            continue
        at = _since(origin, entry.get("at"))
        if at is None or not entry.get("step"):
            continue
        start = max((bar.end for bar in bars if bar.end is not None and bar.end <= at), default=0.0)
        who = f" by {entry.get('by')}" if entry.get("by") else ""
        waits.append(
            Bar(
                step=str(entry.get("step")),
                kind="wait",
                status=str(entry.get("verb")),
                start=start,
                end=at,
                detail=f"waited for a decision: {entry.get('verb')}{who}: {entry.get('reason')}",
            )
        )
    return waits


def live_bars(view: SagaView) -> list[Bar]:
    """The rows of a running saga: each step's live progress (no times)."""
    return [
        Bar(
            step=step.name,
            kind=step.action or "execute",
            status=step.status,
            attempts=step.attempts,
            detail=f"last answer: {step.last_answer}" if step.last_answer else "",
        )
        for step in view.steps
    ]


def applicable_verbs(view: SagaView) -> tuple[str, ...]:
    return VERBS_BY_STATE.get(view.state, ())


def waiting_step(view: SagaView) -> str | None:
    """The step a stuck or parked saga waits on, when its live progress tells."""
    return next((s.name for s in view.steps if s.status in ("stuck", "parked")), None)


def fingerprint(view: SagaView) -> str:
    """Changes whenever what the saga page shows of ``view`` changes."""
    shown = {k: v for k, v in view.to_dict().items() if k not in ("current_step",)}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:20]


# --- rendering --------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _token(value: Any) -> str:
    """A value usable in a class name: lower-case letters, digits, ``_`` and ``-`` only."""
    return re.sub(r"[^a-z0-9_-]", "", str(value).lower()) or "none"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _when(value: Any) -> str:
    moment = parse_time(value)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def saga_link(view: SagaView) -> str:
    return "/saga?" + urlencode({"id": view.saga_id or view.execution_name})


def page(title: str, body: str, *, kind: str, where: str, poll: str = "", version: str = "") -> str:
    """A whole page. ``poll``: the JSON endpoint the script polls (none: the page does not change)."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · saga console</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head>'
        f'<body data-page="{_e(kind)}" data-poll="{_e(poll)}" data-every="{POLL_MILLISECONDS}"'
        f' data-version="{_e(version)}">'
        '<header class="top"><a class="home" href="/">saga console</a>'
        f'<span class="where" title="the saga workflow">{_e(where)}</span>'
        '<span id="live" class="live" aria-live="polite"></span></header>'
        f"<main>{body}</main></body></html>\n"
    )


def _badge(state: str) -> str:
    return f'<span class="badge state-{_token(state)}">{_e(state)}</span>'


def list_rows(views: Sequence[SagaView]) -> str:
    """The table rows of the list page (also sent to the page by each poll)."""
    if not views:
        return '<tr class="empty"><td colspan="5">no sagas match</td></tr>'
    rows = []
    for view in views:
        start, end = parse_time(view.start_time), parse_time(view.end_time)
        took = _duration((end - start).total_seconds()) if start and end else ""
        attention = " attention" if view.state in WAITING_STATES else ""
        rows.append(
            f'<tr class="saga state-{_token(view.state)}{attention}" data-saga="{_e(view.saga_id)}"'
            f' data-state="{_e(view.state)}">'
            f'<td class="id"><a href="{_e(saga_link(view))}">{_e(view.saga_id or "(no saga id)")}</a></td>'
            f"<td>{_badge(view.state)}</td><td>{_e(_when(view.start_time))}</td><td>{_e(took)}</td>"
            f'<td class="execution">{_e(view.execution_name.rsplit("/", 1)[-1])}</td></tr>'
        )
    return "".join(rows)


def attention_note(views: Sequence[SagaView]) -> str:
    waiting = [view for view in views if view.state in WAITING_STATES]
    if not waiting:
        return ""
    noun = "saga waits" if len(waiting) == 1 else "sagas wait"
    return (
        f'<p class="attention-note">{len(waiting)} {noun} for an operator\'s decision (stuck or parked).</p>'
    )


def filter_form(state: str, since: str, limit: int) -> str:
    options = "".join(
        f'<option value="{_e(s)}"{" selected" if s == state else ""}>{_e(s or "any")}</option>'
        for s in ("", *SAGA_STATES)
    )
    return (
        '<form class="filters" method="get" action="/">'
        f'<label>state <select name="state">{options}</select></label>'
        f'<label>started within <input name="since" value="{_e(since)}" placeholder="1h, 30m, 2d or a time"'
        ' size="16"></label>'
        f'<label>at most <input name="limit" type="number" min="1" max="{MAX_LIMIT}" value="{limit}"></label>'
        '<button type="submit">Show</button></form>'
    )


def list_page(
    views: Sequence[SagaView], *, where: str, state: str, since: str, limit: int, error: str = ""
) -> str:
    query = urlencode({"state": state, "since": since, "limit": limit})
    body = (
        "<h1>Sagas</h1>"
        + filter_form(state, since, limit)
        + (f'<p class="error" role="alert">{_e(error)}</p>' if error else "")
        + f'<div id="attention">{attention_note(views)}</div>'
        + '<table class="sagas"><thead><tr><th>saga</th><th>state</th><th>started (UTC)</th>'
        + "<th>took</th><th>execution</th></tr></thead>"
        + f'<tbody id="rows">{list_rows(views)}</tbody></table>'
    )
    return page("Sagas", body, kind="list", where=where, poll="" if error else f"/api/sagas?{query}")


def _axis(span: float) -> str:
    ticks = "".join(
        f'<text x="{fraction * 100:g}%" y="12" text-anchor="{anchor}">{_e(_duration(span * fraction))}</text>'
        for fraction, anchor in (
            (0, "start"),
            (0.25, "middle"),
            (0.5, "middle"),
            (0.75, "middle"),
            (1, "end"),
        )
    )
    return (
        '<li class="axis"><span class="label">since the start</span>'
        f'<svg class="ticks" width="100%" height="16" aria-hidden="true">{ticks}</svg></li>'
    )


def _track(bar: Bar, span: float) -> str:
    """The bar of one row: placed by its times, or (a running saga's step) by its progress."""
    title = f"{bar.kind} {bar.step}: {bar.status}" + (f" ({bar.detail})" if bar.detail else "")
    if bar.start is None:
        done = bar.status in ("succeeded", "compensated", "failed", "unknown", "compensation_failed")
        moving = bar.status in ("running", "parked", "stuck", "compensating")
        x, width = 0.0, 100.0 if done or moving else 0.0
    else:
        end = bar.end if bar.end is not None else bar.start
        x, width = bar.start / span * 100, max((end - bar.start) / span * 100, 0.4)
    shape = f'<rect class="bar" x="{x:.2f}%" y="2" width="{width:.2f}%" height="14" rx="2"><title>{_e(title)}</title></rect>'
    if (bar.attempts or 0) > 1:  # a bar of several attempts: striped over its whole length
        shape += f'<rect class="retries" x="{x:.2f}%" y="2" width="{width:.2f}%" height="14" fill="url(#stripes)"/>'
    return f'<svg class="track" width="100%" height="18" role="img" aria-label="{_e(title)}">{shape}</svg>'


def _row(bar: Bar, span: float) -> str:
    attempts = ""
    if bar.attempts is not None and bar.kind in ("execute", "compensate"):
        attempts = "1 attempt" if bar.attempts == 1 else f"{bar.attempts} attempts"
    took = _duration(bar.end - bar.start) if bar.start is not None and bar.end is not None else ""
    detail = " · ".join(part for part in (attempts, took, bar.detail) if part)
    classes = f"row kind-{_token(bar.kind)} status-{_token(bar.status)}"
    classes += " retried" if (bar.attempts or 0) > 1 else ""
    label = {"not_run": "not run", "wait": "wait"}.get(bar.kind, bar.kind)
    return (
        f'<li class="{classes}" data-step="{_e(bar.step)}" data-kind="{_e(bar.kind)}"'
        f' data-status="{_e(bar.status)}" data-attempts="{_e(bar.attempts)}">'
        f'<span class="at">{_e("+" + _duration(bar.start) if bar.start is not None else "")}</span>'
        f'<span class="kind">{_e(label)}</span><span class="step">{_e(bar.step)}</span>'
        f'<span class="status">{_e(bar.status)}</span>{_track(bar, span)}'
        f'<span class="detail">{_e(detail)}</span></li>'
    )


STRIPES = (
    '<svg class="defs" width="0" height="0" aria-hidden="true"><defs>'
    '<pattern id="stripes" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="3" height="8" fill="rgba(255,255,255,0.45)"/></pattern></defs></svg>'
)


def timeline_html(view: SagaView) -> str:
    """The timeline section: bars over time once the saga ended with a result, else its live steps."""
    result = view.result if isinstance(view.result, Mapping) and "status" in view.result else None
    if result is not None and not view.running:
        bars, span = timeline_bars(result)
        head = f'<h2>Timeline</h2><p class="span">{_e(_duration(span))} from the saga\'s start to its end</p>'
        rows = _axis(span) + "".join(_row(bar, span) for bar in bars)
    elif view.running:
        bars, span = live_bars(view), 1.0
        head = '<h2>Steps so far</h2><p class="span">live: a running saga\'s steps have no times yet</p>'
        rows = "".join(_row(bar, span) for bar in bars)
    else:
        return (
            '<section class="timeline-section"><h2>Timeline</h2><p class="empty">The execution ended '
            "without a saga result: nothing tells what each step did.</p></section>"
        )
    live = " live" if view.running else ""
    return (
        f'<section class="timeline-section">{head}{STRIPES}'
        f'<ol class="timeline{live}" aria-label="timeline">{rows}</ol></section>'
    )


def plan_html(view: SagaView, plan: Sequence[Mapping[str, Any]]) -> str:
    """The undo plan preview. A saga that is undoing already (compensating or stuck) may have run some of
    these: its live progress does not say which, so the heading says so."""
    undoing = view.state in ("compensating", "stuck")
    if not plan:
        return '<section class="plan"><h2>If it failed now</h2><p>nothing to undo</p></section>'
    heading = (
        "Undo plan: the saga is undoing; the undos of later steps may have run already"
        if undoing
        else "If it failed now, it would undo, in this order"
    )
    items = "".join(
        f'<li data-step="{_e(p.get("step"))}"><span class="step">{_e(p.get("step"))}</span> '
        f"<code>{_e(p.get('method'))} {_e(p.get('url'))}</code>"
        f"<pre>{_e(json.dumps(p.get('payload'), indent=2, default=str))}</pre></li>"
        for p in plan
    )
    return (
        f'<section class="plan"><h2>{_e(heading)}</h2><ol>{items}</ol><p class="note">Calls as the request '
        "gave them: a <code>$ref</code> to an output is resolved by the saga when it runs.</p></section>"
    )


def audit_html(view: SagaView) -> str:
    if not view.audit:
        return ""
    rows = "".join(
        f"<tr><td>{_e(_when(a.get('at')))}</td><td>{_e(a.get('verb'))}</td><td>{_e(a.get('step') or '')}</td>"
        f"<td>{_e(a.get('by'))}</td><td>{_e(a.get('reason'))}</td></tr>"
        for a in view.audit
    )
    return (
        '<section class="audit"><h2>Audit</h2><table><thead><tr><th>at (UTC)</th><th>verb</th>'
        f"<th>step</th><th>by</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _summary_html(view: SagaView) -> str:
    start, end = parse_time(view.start_time), parse_time(view.end_time)
    facts = [
        ("execution", f"{view.execution_name} ({view.execution_state})"),
        ("started (UTC)", _when(view.start_time)),
        ("ended (UTC)", _when(view.end_time) if end else "still running"),
        ("took", _duration((end - start).total_seconds()) if start and end else ""),
    ]
    if view.running and view.current_step:
        facts.append(("workflow step", " / ".join(view.current_step)))
    if isinstance(view.result, Mapping) and view.result.get("failed_step"):
        facts.append(("stopped at", f"{view.result.get('failed_step')}: {view.result.get('reason')}"))
    if view.error:
        facts.append(("execution error", json.dumps(view.error, default=str)))
    items = "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in facts if value)
    return f'<dl class="facts">{items}</dl>'


def _waiting_html(view: SagaView) -> str:
    if view.state not in WAITING_STATES:
        return ""
    step = waiting_step(view)
    what = {
        "stuck": "a compensation failed for good: retry it, or skip it once it was undone by hand",
        "parked": "a step failed for good: retry it, compensate the saga, or cancel it",
    }[view.state]
    at = f" (at step {step})" if step else ""
    return (
        f'<p class="waiting state-{view.state}" role="status">This saga is {view.state}{_e(at)}: {what}.</p>'
    )


def _hidden(**fields: Any) -> str:
    return "".join(f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in fields.items())


def _step_select(view: SagaView, chosen: str | None) -> str:
    """The step a verb names: the one the saga waits on when its progress tells, else the person picks."""
    names = [step.name for step in view.steps]
    options = "" if chosen in names else '<option value="" selected>which step waits?</option>'
    options += "".join(
        f'<option value="{_e(name)}"{" selected" if name == chosen else ""}>{_e(name)}</option>'
        for name in names
    )
    return f'<label>step <select name="step" required>{options}</select></label>'


def verbs_html(view: SagaView, reason: str = "") -> str:
    """A form per verb that applies now; each leads to a confirmation page, which sends the verb."""
    verbs = applicable_verbs(view)
    if not verbs:
        return ""
    forms = []
    for verb in verbs:
        step = _step_select(view, waiting_step(view)) if verb in STEP_VERBS else ""
        danger = " danger" if verb == "terminate" else ""
        forms.append(
            f'<form class="verb verb-{verb}{danger}" method="post" action="/saga/confirm">'
            + _hidden(saga=view.saga_id or view.execution_name, verb=verb)
            + f"<h3>{verb.capitalize()}</h3><p>{_e(VERB_TEXT[verb])}</p>{step}"
            + '<label>reason <textarea name="reason" rows="2" required maxlength="2000"'
            + f' placeholder="why (recorded in the saga\'s audit)">{_e(reason)}</textarea></label>'
            + f'<button type="submit">{verb.capitalize()}…</button></form>'
        )
    return (
        '<section class="verbs"><h2>Act on it</h2><div class="forms">' + "".join(forms) + "</div></section>"
    )


def saga_page(
    view: SagaView, plan: Sequence[Mapping[str, Any]], *, where: str, notice: str = "", error: str = ""
) -> str:
    """One saga: its state, its timeline, the undo plan while it runs, the verbs that apply, its audit."""
    saga = view.saga_id or view.execution_name
    body = (
        '<p class="back"><a href="/">← all sagas</a></p>'
        f'<h1><span class="saga-id">{_e(saga)}</span> {_badge(view.state)}</h1>'
        + (f'<p class="error" role="alert">{_e(error)}</p>' if error else "")
        + (f'<p class="notice" role="status">{_e(notice)}</p>' if notice else "")
        + _waiting_html(view)
        + _summary_html(view)
        + timeline_html(view)
        + (plan_html(view, plan) if view.running else "")
        + verbs_html(view)
        + audit_html(view)
        + _result_html(view)
    )
    poll = "/api/saga?" + urlencode({"id": saga}) if view.running else ""
    return page(saga, body, kind="saga", where=where, poll=poll, version=fingerprint(view))


def _result_html(view: SagaView) -> str:
    if view.result is None:
        return ""
    text = json.dumps(view.result, indent=2, default=str)
    return (
        f'<details class="raw"><summary>The saga result as published</summary><pre>{_e(text)}</pre></details>'
    )


def confirm_page(saga: str, verb: str, step: str, reason: str, *, where: str, token: str) -> str:
    """The confirmation step: what will be sent, and the one button that sends it."""
    target = f"step {step} of saga {saga}" if verb in STEP_VERBS else f"saga {saga}"
    consequence = (
        "Nothing is undone: effects stay in place, and a step call already queued may still reach its "
        "participant once."
        if verb == "terminate"
        else "It is sent to the running saga and recorded in its audit with your identity."
    )
    body = (
        '<section class="confirm" role="alertdialog" aria-labelledby="confirm-title">'
        f'<h1 id="confirm-title">{_e(verb.capitalize())} {_e(target)}?</h1>'
        f"<p>{_e(VERB_TEXT.get(verb, ''))}. {_e(consequence)}</p>"
        f'<dl class="facts"><dt>reason</dt><dd class="reason">{_e(reason)}</dd></dl>'
        '<form method="post" action="/saga/act">'
        + _hidden(saga=saga, verb=verb, step=step, reason=reason, token=token)
        + f'<button type="submit" name="confirmed" value="yes" class="confirm-send">Yes, {_e(verb)}</button> '
        f'<a class="confirm-back" href="{_e("/saga?" + urlencode({"id": saga}))}">No, go back</a>'
        "</form></section>"
    )
    return page(f"{verb} {saga}?", body, kind="confirm", where=where)


def error_page(message: str, *, where: str) -> str:
    body = f'<p class="back"><a href="/">← all sagas</a></p><p class="error" role="alert">{_e(message)}</p>'
    return page("error", body, kind="error", where=where)


# --- the HTTP side ----------------------------------------------------------------------------------------


SENT = {
    "retry": "retry sent: the saga runs the action again.",
    "skip": "skip sent: the saga records the compensation as done by hand and goes on undoing.",
    "compensate": "compensate sent: the saga undoes its done steps.",
    "cancel": "cancel sent: the saga stops going forward and undoes what it did.",
    "terminate": "terminated: the execution was cancelled; nothing was undone.",
}


class Console:
    """The console's state: the backend it reads and acts through, the token a verb's POST must carry
    (made at start), and the ``Host`` names it answers to (None: any)."""

    def __init__(
        self, backend: SagaBackend, *, token: str | None = None, hosts: frozenset[str] | None = None
    ) -> None:
        self.backend = backend
        self.token = token or secrets.token_urlsafe(24)
        self.hosts = hosts

    @property
    def where(self) -> str:
        return self.backend.workflow_path

    def read_saga(self, saga: str) -> tuple[SagaView, list[dict[str, Any]]]:
        """The saga's view and, while it runs, its undo plan (blocking: the Google clients are)."""
        return self.backend.read_saga(saga)

    def send(self, saga: str, verb: str, step: str, reason: str) -> str:
        """Send ``verb`` through the backend; raises what the backend raises."""
        backend = self.backend
        actions: dict[str, Callable[[], str]] = {
            "retry": lambda: backend.retry_step(saga, step, reason=reason),
            "skip": lambda: backend.skip_step(saga, step, reason=reason),
            "compensate": lambda: backend.compensate_saga(saga, reason=reason),
            "cancel": lambda: backend.cancel_saga(saga, reason=reason),
            "terminate": lambda: backend.terminate_saga(saga, reason=reason),
        }
        return actions[verb]()


CONSOLE = web.AppKey("console", Console)


def status_of(error: BaseException) -> int:
    """The HTTP status a page shows an error with."""
    if isinstance(error, SagaNotFoundError):
        return 404
    if isinstance(error, SagaNotRunningError | VerbNotApplicableError):
        return 409
    if isinstance(error, InvalidRequestError):
        return 400
    return 502


def message_of(error: BaseException) -> str:
    """The error in words: the library's own message, else the API error's type and message."""
    return str(error) if isinstance(error, SagaError) else f"{type(error).__name__}: {error}"


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


@dataclass(frozen=True)
class Filters:
    state: str
    since: str
    limit: int
    moment: datetime.datetime | None


def parse_filters(query: Mapping[str, str]) -> Filters:
    """The list's filters from a query string. Raises ``InvalidRequestError`` naming every bad one."""
    from saga_orchestrator.console.cli import parse_since
    from saga_orchestrator.errors import FieldError

    state, since, raw_limit = (query.get(k, "").strip() for k in ("state", "since", "limit"))
    problems = []
    if state and state not in SAGA_STATES:
        problems.append(FieldError("state", f"must be one of {', '.join(SAGA_STATES)}"))
    limit = int(raw_limit) if raw_limit.isdigit() else DEFAULT_LIMIT if not raw_limit else 0
    if not 1 <= limit <= MAX_LIMIT:
        problems.append(FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT}"))
    moment = None
    try:
        moment = parse_since(since) if since else None
    except InvalidRequestError as error:
        problems += [FieldError("since", e.message) for e in error.errors]
    if problems:
        raise InvalidRequestError(problems)
    return Filters(state, since, limit, moment)


async def _listed(console: Console, query: Mapping[str, str]) -> tuple[Filters, list[SagaView]]:
    filters = parse_filters(query)
    views = await asyncio.to_thread(
        console.backend.list_sagas, status=filters.state or None, since=filters.moment, limit=filters.limit
    )
    return filters, views


async def list_handler(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    query = request.query
    try:
        filters, views = await _listed(console, query)
    except Exception as error:
        limit = query.get("limit", "")
        shown = int(limit) if limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT else DEFAULT_LIMIT
        text = list_page(
            [],
            where=console.where,
            state=query.get("state", ""),
            since=query.get("since", ""),
            limit=shown,
            error=message_of(error),
        )
        return _html(text, status_of(error))
    text = list_page(
        views, where=console.where, state=filters.state, since=filters.since, limit=filters.limit
    )
    return _html(text)


async def list_api(request: web.Request) -> web.Response:
    try:
        _, views = await _listed(request.app[CONSOLE], request.query)
    except Exception as error:
        return web.json_response({"error": message_of(error)}, status=status_of(error))
    keys = ("saga_id", "state", "execution_name", "execution_state", "start_time", "end_time")
    return web.json_response(
        {
            "sagas": [{key: getattr(view, key) for key in keys} for view in views],
            "rows": list_rows(views),
            "attention": attention_note(views),
        }
    )


async def saga_handler(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    saga = request.query.get("id", "").strip()
    if not saga:
        raise web.HTTPSeeOther("/")
    try:
        view, plan = await asyncio.to_thread(console.read_saga, saga)
    except Exception as error:
        return _html(error_page(message_of(error), where=console.where), status_of(error))
    notice = SENT.get(request.query.get("sent", ""), "")
    return _html(saga_page(view, plan, where=console.where, notice=notice))


async def saga_api(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    try:
        view, plan = await asyncio.to_thread(console.read_saga, request.query.get("id", "").strip())
    except Exception as error:
        return web.json_response({"error": message_of(error)}, status=status_of(error))
    return web.json_response(
        {"saga": view.to_dict(), "undo_plan": plan, "version": fingerprint(view), "running": view.running},
        dumps=lambda value: json.dumps(value, default=str),
    )


async def _refused(console: Console, saga: str, message: str, status: int) -> web.Response:
    """The saga's page with ``message`` on top; the bare message when the saga cannot be read."""
    try:
        view, plan = await asyncio.to_thread(console.read_saga, saga)
    except Exception:
        return _html(error_page(message, where=console.where), status)
    return _html(saga_page(view, plan, where=console.where, error=message), status)


def _verb_form(form: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """(saga, verb, step, reason, problem) from a verb's form; ``problem`` is "" when it can be sent."""
    saga, verb, step, reason = (str(form.get(k, "")).strip() for k in ("saga", "verb", "step", "reason"))
    problem = ""
    if verb not in VERB_TEXT:
        problem = f"no such verb {verb!r} (the verbs: {', '.join(VERB_TEXT)})"
    elif not reason:
        problem = f"{verb}: a reason is required (it is recorded in the saga's audit)"
    elif verb in STEP_VERBS and not step:
        problem = f"{verb}: name the step the saga waits on"
    return saga, verb, step if verb in STEP_VERBS else "", reason, problem


async def confirm_handler(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    saga, verb, step, reason, problem = _verb_form(await request.post())
    if not saga:
        raise web.HTTPSeeOther("/")
    if problem:
        return await _refused(console, saga, problem, 400)
    return _html(confirm_page(saga, verb, step, reason, where=console.where, token=console.token))


async def act_handler(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    form = await request.post()
    saga, verb, step, reason, problem = _verb_form(form)
    if not secrets.compare_digest(str(form.get("token", "")), console.token):
        message = "this form is stale or came from another page: open the saga again and confirm there"
        return _html(error_page(message, where=console.where), 403)
    if not saga:
        raise web.HTTPSeeOther("/")
    if problem:
        return await _refused(console, saga, problem, 400)
    if form.get("confirmed") != "yes":
        return _html(confirm_page(saga, verb, step, reason, where=console.where, token=console.token))
    try:
        await asyncio.to_thread(console.send, saga, verb, step, reason)
    except Exception as error:
        return await _refused(console, saga, message_of(error), status_of(error))
    raise web.HTTPSeeOther("/saga?" + urlencode({"id": saga, "sent": verb}))


@web.middleware
async def guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer only to the expected ``Host`` names, and send the security headers with every answer."""
    hosts = request.app[CONSOLE].hosts
    if hosts is not None and request.host.lower() not in hosts:
        return web.Response(status=421, text=f"this console answers at {', '.join(sorted(hosts))} only")
    response = await handler(request)
    response.headers.update(SECURITY_HEADERS)
    return response


def build_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[CONSOLE] = console
    app.router.add_get("/", list_handler)
    app.router.add_get("/api/sagas", list_api)
    app.router.add_get("/saga", saga_handler)
    app.router.add_get("/api/saga", saga_api)
    app.router.add_post("/saga/confirm", confirm_handler)
    app.router.add_post("/saga/act", act_handler)
    app.router.add_static("/static/", STATIC_DIR)
    return app


def loopback_hosts(host: str, port: int) -> frozenset[str] | None:
    """The ``Host`` names a console bound to ``host`` answers to: the loopback names when it listens on
    a loopback address (None, any name, when it listens on others)."""
    if host.lower() not in LOOPBACK_NAMES:
        return None
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})


def console_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(backend: SagaBackend, host: str, port: int, out: IO[str]) -> int:
    """Serve the console until SIGINT or SIGTERM; prints its URL first (``port`` 0: a free one)."""
    return asyncio.run(_serve(backend, host, port, out))


async def _serve(backend: SagaBackend, host: str, port: int, out: IO[str]) -> int:
    console = Console(backend)
    runner = web.AppRunner(build_app(console), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1]) if port == 0 else port
        console.hosts = loopback_hosts(host, bound)
        print(
            f"saga console on {console_url(host, bound)} ({console.where}); Ctrl-C stops",
            file=out,
            flush=True,
        )
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()
    finally:
        await runner.cleanup()
    print("stopped", file=out, flush=True)
    return 0


__all__ = ["Console", "build_app", "list_page", "saga_page", "serve", "timeline_bars"]
