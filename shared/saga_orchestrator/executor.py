"""What the step_executor function does with one Cloud Task attempt (framework-free).

The task body (see README "Cloud Task body") names one action of one step; Cloud Tasks delivers it at
least once and retries it with the queue's backoff while the answer is not 2xx.

Attempts count the dispatches that called the participant, not the dispatches Cloud Tasks made. The
attempt number is ``X-CloudTasks-TaskExecutionCount + 1``: "the total number of times that the task has
received a response from the handler ... does not include failures due to 5XX error codes", whereas
``X-CloudTasks-TaskRetryCount`` "includes attempts where the task failed due to 5XX error codes and never
reached the execution phase" (https://cloud.google.com/tasks/docs/creating-http-target-tasks#handler),
such as the platform's own answer when no instance is free (Cloud Run answers 429 or 500,
https://cloud.google.com/run/docs/troubleshooting). So every dispatch that called the participant
answers a status below 500 (a retry is ``RETRY_STATUS``, 424 Failed Dependency: Cloud Tasks retries any
status outside 200-299, https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks#HttpRequest,
and 424 is neither 429 nor 503, which would also slow the whole queue down), and only a dispatch that
did not call it answers 5xx. Answers:

- 200 after reporting a final outcome to ``callback_url``: success, business failure, invalid call,
  or a transient failure on the last allowed attempt (``max_attempts`` holds exactly: the executor
  answers 2xx at that attempt whatever the participant said);
- 424 on a transient failure while attempts remain (Cloud Tasks retries; nothing is reported);
- 424 when the callback could not be delivered after a call (Cloud Tasks retries; the participant sees
  the same ``Idempotency-Key`` again, so the effect is not applied twice, and that call is the next
  attempt): no answer, a 5xx, or 401, 403, 408 or 429 (credentials, permission, time or quota: another
  try may get through). An attempt beyond ``max_attempts`` (only after such an answer to the last one)
  calls once more and reports whatever it gets as final.
- 500 when the callback could not be delivered by a dispatch that did not call the participant (an
  execute past the saga deadline, a body that cannot be understood): it used no attempt.
- 200 ``unheard`` when the callback answers any other 4xx, with a warning naming the execution. No
  Google page states which status a callback to an ended execution gets (404, or 400, 409 or 412 are
  all plausible), and no other 4xx can turn into a success on a later try: retrying would only call
  the participant again, up to the queue's attempts.

A body without ``callback_url`` (the ``TaskManager`` envelope) follows the same rules without reporting.
A body that cannot be understood is answered 200 (another try cannot fix it) after reporting
``invalid`` when a callback URL is known. A callback URL that egress refuses (``egress``: its host is
not on the allowlist, or resolves to an internal or metadata address) is answered 200 ``refused`` at
once, before the participant is called, with an error log naming the host: nobody could hear the
outcome and another try gets the same answer; the saga's wait for the step ends at its bound.

What holds on Google Cloud: a step is called exactly ``max_attempts`` times before it is reported
``exhausted``, and the reported ``attempts`` is the number of calls, whatever number of dispatches the
platform refuses with a 5xx (or drops without an answer) before they reach this code, as long as Cloud
Tasks keeps retrying: the queue's own ``max_attempts`` (``SAGA_QUEUE_MAX_ATTEMPTS``) counts every
dispatch, refusals included, and when it is used up the task is dropped and the saga's wait for the step
ends at its bound. Not exact:

- A dispatch that called the participant and then gave Cloud Tasks no status below 500 is not counted,
  so the next one calls again under the same number (one call more than counted; same
  ``Idempotency-Key``, so no second effect): the process crashed or its instance was stopped between
  the call and the answer, the dispatch deadline passed first, or the answer was lost on its way back.
- A refusal the platform answers itself with a status below 500 (Cloud Run's 429 when the service is at
  its maximum instances; a 403 while the invoker grant is missing) never reached this code, but Google
  documents only 5xx as left out of the execution count, so it is presumably counted: one call fewer
  per such refusal. ``deployment.env`` sizes step_executor (concurrency x maximum instances) for the
  queue's ``max_concurrent_dispatches`` so that the 429 should not happen, and ``deploy.sh --check``
  warns when they disagree. When such a refusal was the previous dispatch the executor sees it in
  ``X-CloudTasks-TaskPreviousResponse`` and logs a warning; it cannot see earlier ones, nor know
  whether Cloud Tasks counted it, so it does not correct the number.
- Two deliveries of one dispatch (Cloud Tasks delivers at least once) both call under one number.
- A final report that cannot be delivered after the last allowed call makes the next dispatch call once
  more (same ``Idempotency-Key``: the participant answers what it did) so as to report something.

Every call (participant and callback) goes through ``egress.Egress``: the name is resolved with the
executor's ``resolver`` (``socket.getaddrinfo`` unless a test injects one), every address is checked,
and the connection is made to a checked address.
"""

from __future__ import annotations

import functools
import json
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from saga_orchestrator.egress import Egress, EgressRefusedError, Resolver
from saga_orchestrator.errors import (
    CallbackDeliveryError,
    FieldError,
    InvalidRequestError,
    ReferenceResolutionError,
    SecretAccessError,
)
from saga_orchestrator.logging import get_logger, log_context, trace_name
from saga_orchestrator.model import ActionSpec
from saga_orchestrator.participant import CallContext, CallOutcome, prepare, send
from saga_orchestrator.ports import HttpCallError, HttpTransport, SecretSource, TokenSource

if TYPE_CHECKING:
    # participant.send still names the adapter's class; the port is what this module needs.
    from saga_orchestrator.httpclient import HttpClient
from saga_orchestrator.settings import Settings
from saga_orchestrator.tracing import trace_id

log = get_logger("saga_orchestrator.executor")

# The answer that makes Cloud Tasks retry after a call: not 2xx, and below 500 so that the dispatch counts in
# X-CloudTasks-TaskExecutionCount (see the module docstring). Google's own advice for task handlers: "If
# you want to trigger a retry intentionally, use any status code other than 2xx or 503"
# (https://cloud.google.com/tasks/docs/creating-appengine-handlers).
RETRY_STATUS = 424
# Statuses below 500 this executor answers to Cloud Tasks; another one as the previous response was the
# platform's (405 is functions/step_executor's answer to a method other than POST, which Cloud Tasks
# never sends here).
OWN_ANSWERS_BELOW_500 = frozenset({200, 405, RETRY_STATUS})
# Part of budget.ATTEMPT_OVERHEAD_SECONDS: one attempt must fit the Cloud Tasks dispatch deadline.
CALLBACK_TIMEOUT_SECONDS = 10.0
# The callback's answer is not used; no more of it is read.
CALLBACK_ANSWER_MAX_BYTES = 64 * 1024
DEADLINE_MESSAGE = "the saga deadline passed before the step succeeded"
# The error kind of an execute whose output is over its share of the saga state budget: the workflow
# compensates the step itself too (its effect happened).
OUTPUT_TOO_LARGE = "output_too_large"


@dataclass(frozen=True)
class StepTask:
    saga_id: str
    step_name: str
    action: str
    call: ActionSpec
    callback_url: str | None
    outputs: dict[str, Any] = field(default_factory=dict)
    execution_id: str | None = None
    step_index: int = 0
    # Epoch seconds after which an ``execute`` must not be (re)tried: the saga deadline.
    deadline: float | None = None
    # This output's share of the saga state budget (bytes of compact UTF-8 JSON); None: the whole budget.
    max_output_bytes: int | None = None
    # The Idempotency-Key's round (``participant.idempotency_key``), set by an operator's retry.
    key_round: int = 0
    # Attempts made before this task was created: the first, made directly by a forward run
    # (``saga_orchestrator.forward``), which answered a transient failure.
    attempts_before: int = 0


@dataclass(frozen=True)
class Settled:
    """What one attempt settled: ``final``, the body to report, or None while attempts remain after a
    transient failure (``message``: what the participant answered). ``called``: the participant was
    called (the attempt was used)."""

    final: dict[str, Any] | None
    called: bool = True
    message: str = ""


@dataclass(frozen=True)
class Reply:
    """The HTTP answer to Cloud Tasks: ``status_code`` and a small JSON body (no secrets, no outputs)."""

    status_code: int
    body: dict[str, Any]


def parse_task(body: Any, settings: Settings) -> StepTask:
    """Raises ``InvalidRequestError`` naming every bad field (``call`` is re-checked, allowlist included)."""
    if not isinstance(body, dict):
        raise InvalidRequestError([FieldError("", "the task body must be a JSON object")])
    errors: list[FieldError] = []
    for key in ("saga_id", "step_name"):
        if not isinstance(body.get(key), str) or not body.get(key):
            errors.append(FieldError(key, "is required and must be a string"))
    action = body.get("action", "execute")
    if action not in ("execute", "compensate"):
        errors.append(FieldError("action", "must be 'execute' or 'compensate'"))
    field_of = _FieldReader(body, errors)
    callback_url = field_of("callback_url", None, lambda v: isinstance(v, str), "must be a string")
    outputs = field_of(
        "outputs", {}, lambda v: isinstance(v, dict), "must be an object of step name to output"
    )
    step_index = field_of("step_index", 0, _is_int, "must be an integer")
    deadline = field_of("deadline", None, _is_number, "must be epoch seconds or null")
    max_output_bytes = field_of(
        "max_output_bytes", None, lambda v: _is_int(v) and v >= 0, "must be a non-negative integer or null"
    )
    key_round = field_of("key_round", 0, lambda v: _is_int(v) and v >= 0, "must be a non-negative integer")
    attempts_before = field_of(
        "attempts_before", 0, lambda v: _is_int(v) and v >= 0, "must be a non-negative integer"
    )
    call = None
    try:
        call = ActionSpec.from_dict(body.get("call"), settings)
    except InvalidRequestError as error:
        errors.extend(error.errors)
    if errors or call is None:
        raise InvalidRequestError(errors)
    execution_id = body.get("execution_id")
    return StepTask(
        saga_id=body["saga_id"],
        step_name=body["step_name"],
        action=action,
        call=call,
        callback_url=callback_url,
        outputs=outputs,
        execution_id=execution_id if isinstance(execution_id, str) else None,
        step_index=step_index,
        deadline=float(deadline) if deadline is not None else None,
        max_output_bytes=max_output_bytes,
        key_round=key_round,
        attempts_before=attempts_before,
    )


class _FieldReader:
    """Reads optional task fields: a missing or null one is its default; a bad one is reported and
    replaced by the default."""

    def __init__(self, body: dict[str, Any], errors: list[FieldError]) -> None:
        self._body = body
        self._errors = errors

    def __call__(self, key: str, default: Any, ok: Callable[[Any], bool], message: str) -> Any:
        value = self._body.get(key)
        if value is None:
            return default
        if ok(value):
            return value
        self._errors.append(FieldError(key, message))
        return default


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def output_bytes(output: Any) -> int:
    """The size an output takes in the saga's state: its compact UTF-8 JSON."""
    return len(json.dumps(output, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def report(url: str, body: dict[str, Any], tokens: TokenSource, http: HttpTransport) -> None:
    """POST the callback body with ``Authorization: Bearer <access token>``; raises ``CallbackDeliveryError``."""
    try:
        token = tokens.access_token()
    except Exception as error:
        raise CallbackDeliveryError(url, f"no access token ({type(error).__name__})") from None
    try:
        answer = http.request(
            "POST",
            url,
            body=json.dumps(body, separators=(",", ":")).encode("utf-8"),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            connect_timeout=CALLBACK_TIMEOUT_SECONDS,
            read_timeout=CALLBACK_TIMEOUT_SECONDS,
            max_body=CALLBACK_ANSWER_MAX_BYTES,
        )
    except HttpCallError as error:
        raise CallbackDeliveryError(url, error.message) from None
    if not 200 <= answer.status < 300:
        raise CallbackDeliveryError(url, f"HTTP {answer.status}", answer.status)


# 4xx answers of the callback that another try may get past: credentials (401), permission (403, e.g.
# an IAM grant still propagating), time (408) and quota (429).
CALLBACK_RETRYABLE_4XX = frozenset({401, 403, 408, 429})


def nobody_listens(error: CallbackDeliveryError) -> bool:
    """Whether the callback's answer says that nobody will ever read the outcome: a 4xx other than
    ``CALLBACK_RETRYABLE_4XX``."""
    status = error.status_code
    return status is not None and 400 <= status < 500 and status not in CALLBACK_RETRYABLE_4XX


def execution_of(callback_url: str) -> str:
    """The execution a callback URL belongs to (``projects/…/executions/ID``), or the URL itself when it
    does not have the Workflows shape (``…/v1/projects/…/executions/ID/callbacks/…``)."""
    path = callback_url.split("://", 1)[-1].partition("/")[2]
    head, found, _ = path.partition("/callbacks/")
    if found and "/executions/" in head:
        return head.removeprefix("v1/")
    return callback_url


def _warn_unheard(callback_url: str, error: CallbackDeliveryError, **fields: Any) -> None:
    execution = execution_of(callback_url)
    log.warning(
        f"execution {execution} no longer listens (callback answered HTTP {error.status_code});"
        " outcome not reported",
        execution=execution,
        status_code=error.status_code,
        **fields,
    )


def succeeded_body(output: Any, attempts: int) -> dict[str, Any]:
    return {"status": "succeeded", "output": output, "error": None, "attempts": attempts}


def failed_body(kind: str, message: str, attempts: int, status_code: int | None = None) -> dict[str, Any]:
    return {
        "status": "failed",
        "output": None,
        "error": {"kind": kind, "status_code": status_code, "message": message},
        "attempts": attempts,
    }


class StepExecutor:
    """One instance per process; ``run`` is thread-safe."""

    def __init__(
        self,
        settings: Settings,
        *,
        secrets: SecretSource,
        tokens: TokenSource,
        http: HttpClient,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        """``clock``: epoch seconds (saga deadlines). ``resolver``: how names become addresses, with
        ``socket.getaddrinfo``'s signature."""
        self.settings = settings
        self._secrets = secrets
        self._tokens = tokens
        self._clock = clock
        self._egress = Egress(settings, resolver=resolver)
        self._http = http.guarded(self._egress.destination)
        # The callback carries an OAuth2 access token: only the Workflows API or an allowed host gets it.
        self._callback_http = http.guarded(functools.partial(self._egress.destination, callback=True))

    def handle(self, body: Any, headers: Mapping[str, str]) -> Reply:
        attempt = attempt_number(headers)
        try:
            task = parse_task(body, self.settings)
        except InvalidRequestError as error:
            return self._refuse(body, error, attempt)
        with log_context(
            saga_id=task.saga_id,
            step=task.step_name,
            trace=trace_name(self.settings.project_id, trace_id(task.saga_id)),
        ):
            _warn_platform_refusal(headers, task.action, attempt)
            return self.run(task, attempt + task.attempts_before)

    def run(self, task: StepTask, attempt: int) -> Reply:
        if task.callback_url is not None:
            refused = self._callback_refusal(task.callback_url)
            if refused is not None:
                log.error(
                    f"refusing task: callback URL {refused.message}; the saga cannot hear from this step"
                    " (list the Workflows callback host in SAGA_ALLOWED_HOSTS)",
                    action=task.action,
                    callback_host=refused.host,
                )
                return Reply(200, {"outcome": "refused", "message": "callback_url " + refused.message})
        settled = self.settle(task, attempt)
        if settled.final is None:
            return Reply(RETRY_STATUS, {"outcome": "retry", "attempt": attempt, "message": settled.message})
        return self._finish(task, settled.final, called=settled.called)

    def settle(self, task: StepTask, attempt: int) -> Settled:
        """Attempt number ``attempt`` of ``task``'s action: its final body, or none while attempts remain
        after a transient failure (the message says what the participant answered)."""
        max_attempts = task.call.max_attempts
        if self._past_deadline(task):
            # An execute is never started or retried after the saga deadline; compensations always run.
            # No call: this dispatch uses no attempt.
            return Settled(failed_body("deadline", DEADLINE_MESSAGE, attempt - 1), called=False)
        outcome = self._attempt(task, attempt)
        last = attempt >= max_attempts
        if outcome.kind == "transient" and not last and self._past_deadline(task):
            return Settled(failed_body("deadline", f"{DEADLINE_MESSAGE}; last: {outcome.message}", attempt))
        log.info(
            f"{task.action} attempt {attempt}/{max_attempts}: {outcome.kind}",
            action=task.action,
            attempt=attempt,
            max_attempts=max_attempts,
            outcome=outcome.kind,
            status_code=outcome.status_code,
            # The answer as classified (status line and body text, or why there was none); never a
            # header. Cut short: one log line per attempt, read back by saga_orchestrator.attempts.
            answer=outcome.message if len(outcome.message) <= 300 else outcome.message[:300] + "…",
        )
        if outcome.kind == "transient" and not last:
            return Settled(None, message=outcome.message)
        if outcome.kind == "success":
            return Settled(self._within_budget(task, outcome, attempt))
        if outcome.kind == "transient":
            message = f"{max_attempts} attempts failed; last: {outcome.message}"
            return Settled(failed_body("exhausted", message, attempt, outcome.status_code))
        kind = "invalid" if outcome.status_code is None else "business"
        return Settled(failed_body(kind, outcome.message, attempt, outcome.status_code))

    def _within_budget(self, task: StepTask, outcome: CallOutcome, attempt: int) -> dict[str, Any]:
        """The final body of a success: an output over its share of the state budget fails an execute
        (a business failure: another try returns the same); a compensation still succeeded (the undo
        happened), only its output, which nothing references, is dropped."""
        size = output_bytes(outcome.output)
        budget = self.settings.state_budget_bytes
        share = budget if task.max_output_bytes is None else task.max_output_bytes
        if size <= share:
            return succeeded_body(outcome.output, attempt)
        message = (
            f"the {task.action} output of step {task.step_name} is {size} bytes, over its share of the"
            f" saga state budget: {share} of SAGA_STATE_BUDGET_BYTES={budget} bytes"
        )
        log.warning(message, action=task.action, output_bytes=size, max_output_bytes=share)
        if task.action == "compensate":
            return succeeded_body(None, attempt)
        return failed_body(OUTPUT_TOO_LARGE, message, attempt, outcome.status_code)

    def _callback_refusal(self, url: str) -> EgressRefusedError | None:
        """Why egress refuses the callback URL, or None. A name that does not resolve now is not a
        refusal: the report fails and Cloud Tasks retries (500)."""
        try:
            self._egress.destination(url, callback=True)
        except EgressRefusedError as refused:
            return refused
        except HttpCallError:
            return None
        return None

    def _past_deadline(self, task: StepTask) -> bool:
        return task.action == "execute" and task.deadline is not None and self._clock() >= task.deadline

    def _attempt(self, task: StepTask, attempt: int) -> CallOutcome:
        """One participant call; problems that another try cannot fix come back as kind ``business``
        with no status code (reported as ``invalid``)."""
        try:
            secret_values = {name: self._secrets.get(ref) for name, ref in task.call.secret_headers.items()}
        except SecretAccessError as error:
            return CallOutcome("transient" if error.retryable else "business", None, None, str(error))
        ctx = CallContext(task.saga_id, task.step_name, task.action, attempt, task.key_round)  # type: ignore[arg-type]
        try:
            # A compensation of a step without an output is the compensation of an unknown outcome
            # (the workflow only compensates steps that succeeded or whose outcome it never learned).
            unknown = (task.step_name,) if task.action == "compensate" else ()
            prepared = prepare(
                task.call,
                ctx,
                outputs=task.outputs,
                secret_values=secret_values,
                tokens=self._tokens,
                unknown=unknown,
            )
        except ReferenceResolutionError as error:
            return CallOutcome("business", None, None, str(error))
        except Exception as error:  # token fetch (metadata server) trouble: try again later
            return CallOutcome("transient", None, None, f"could not get an ID token ({type(error).__name__})")
        return send(prepared, self._http)

    def _finish(self, task: StepTask, final: dict[str, Any], *, called: bool = True) -> Reply:
        """Report ``final``. ``called``: this dispatch called the participant (it used an attempt), so a
        report that must be retried is answered ``RETRY_STATUS`` (counted), else 500 (not counted)."""
        if task.callback_url is None:
            return Reply(200, {"outcome": "final", "result": final["status"], "attempts": final["attempts"]})
        try:
            # The saga's one callback endpoint receives every action's outcome: name the action answered.
            answered = {**final, "step_index": task.step_index, "action": task.action}
            report(task.callback_url, answered, self._tokens, self._callback_http)
        except CallbackDeliveryError as error:
            if nobody_listens(error):
                # The execution has ended (the saga finished without this answer, or it was a duplicate
                # start that yielded): nobody will ever listen, so retrying would only call again.
                _warn_unheard(task.callback_url, error, action=task.action)
                return Reply(
                    200, {"outcome": "unheard", "result": final["status"], "attempts": final["attempts"]}
                )
            log.error(str(error), action=task.action)
            status = RETRY_STATUS if called else 500
            return Reply(status, {"outcome": "callback_failed", "message": str(error)})
        return Reply(200, {"outcome": "reported", "result": final["status"], "attempts": final["attempts"]})

    def _refuse(self, body: Any, error: InvalidRequestError, attempt: int) -> Reply:
        errors = [e.to_dict() for e in error.errors]
        callback_url = body.get("callback_url") if isinstance(body, dict) else None
        saga_id = (
            body.get("saga_id") if isinstance(body, dict) and isinstance(body.get("saga_id"), str) else None
        )
        with log_context(saga_id=saga_id):
            log.warning("refusing an invalid task", errors=errors)
            if isinstance(callback_url, str) and self._callback_refusal(callback_url) is None:
                final = failed_body("invalid", str(error), attempt)
                final.update({key: body[key] for key in ("step_index", "action") if key in body})
                try:
                    report(callback_url, final, self._tokens, self._callback_http)
                except CallbackDeliveryError as delivery:
                    if nobody_listens(delivery):
                        _warn_unheard(callback_url, delivery)
                        return Reply(200, {"outcome": "unheard", "result": "failed", "errors": errors})
                    log.error(str(delivery))
                    return Reply(500, {"outcome": "callback_failed", "message": str(delivery)})
                return Reply(200, {"outcome": "reported", "result": "failed", "errors": errors})
        return Reply(200, {"outcome": "refused", "errors": errors})


def attempt_number(headers: Mapping[str, str]) -> int:
    """``X-CloudTasks-TaskExecutionCount + 1``: the dispatches before this one that got an answer below
    500 from this code, which are those that called the participant (module docstring). A request
    without the header (not from Cloud Tasks) is attempt 1."""
    return _int_header(headers, "X-CloudTasks-TaskExecutionCount") + 1


def _warn_platform_refusal(headers: Mapping[str, str], action: str, attempt: int) -> None:
    """Log the previous dispatch's status when it is below 500 and not one this executor answers: the
    platform refused that dispatch itself, and Cloud Tasks may have counted it as an execution."""
    previous = _int_header(headers, "X-CloudTasks-TaskPreviousResponse")
    if previous == 0 or previous >= 500 or previous in OWN_ANSWERS_BELOW_500:
        return
    log.warning(
        f"the previous dispatch of this {action} was answered HTTP {previous} before it reached"
        f" step_executor (is the function at its maximum instances?); if Cloud Tasks counted it as an"
        f" execution, attempt {attempt} is one more than the calls made",
        action=action,
        attempt=attempt,
        previous_response=previous,
    )


def _int_header(headers: Mapping[str, str], name: str) -> int:
    wanted = name.lower()
    value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    try:
        return max(0, int(value)) if value is not None else 0
    except ValueError:
        return 0
