"""The web console's pages, as server-rendered HTML: the list of sagas, one saga (its timeline, undo plan,
verbs and audit), a verb's confirmation and an error.

Everything rendered is escaped (``html.escape``): saga ids, step names, reasons, payloads and answers are
user data. Bars are SVG rectangles positioned by attributes, so the Content-Security-Policy the server
sends forbids inline scripts and styles altogether.
"""

from __future__ import annotations

import datetime
import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from saga_orchestrator.console.bars import Bar, live_bars, timeline_bars
from saga_orchestrator.sagas import SAGA_STATES, SagaView
from saga_orchestrator.times import parse_time

POLL_MILLISECONDS = 2000
DEFAULT_LIMIT, MAX_LIMIT = 50, 500


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


def applicable_verbs(view: SagaView) -> tuple[str, ...]:
    return VERBS_BY_STATE.get(view.state, ())


def waiting_step(view: SagaView) -> str | None:
    """The step a stuck or parked saga waits on, when its live progress tells."""
    return next((s.name for s in view.steps if s.status in ("stuck", "parked")), None)


def fingerprint(view: SagaView) -> str:
    """Changes whenever what the saga page shows of ``view`` changes."""
    shown = {k: v for k, v in view.to_dict().items() if k not in ("current_step",)}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:20]


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


__all__ = [
    "applicable_verbs",
    "attention_note",
    "confirm_page",
    "error_page",
    "fingerprint",
    "list_page",
    "list_rows",
    "saga_page",
]
