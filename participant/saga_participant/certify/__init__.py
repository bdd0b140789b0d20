"""``saga certify``: run the participant protocol's hard cases against any participant over HTTP.

    saga certify --execute URL --compensate URL [--payload JSON] [--failing-payload JSON] [--json]

Each case uses a saga id of its own (``certify-<case>-<random>``) and the orchestrator's headers
(``Idempotency-Key``, ``X-Saga-*``, ``traceparent``, ``Authorization: Bearer <ID token>``), and reads what
the participant really applied from ``GET <origin>/_saga/effects?saga_id=ID`` (answering ``{"effects":
[{"step", "action", "idempotency_key"}]}``; ``--no-effects`` checks answers only). Tokens: ``--token-file``
(e.g. ``gcloud auth print-identity-token --impersonate-service-account=SA --audiences=ORIGIN``), else
minted by the metadata server (``--metadata-host``, default ``$GCE_METADATA_HOST``, else Google's) for
``--audience`` (default: the execute URL's origin).

Exit status: 0 when every case passed (a skipped case does not fail), 1 when one failed, 2 when the
run could not start. ``--json`` prints the whole report (what was sent, what came back) for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from saga_participant.certify.cases import CASES, Case, Run, Skip, Target
from saga_participant.certify.client import Exchange, TokenError, Tokens, origin

Outcome = str  # "passed" | "failed" | "skipped"


@dataclass(frozen=True)
class CaseResult:
    name: str
    rule: str
    outcome: Outcome
    reason: str | None
    saga_id: str
    exchanges: list[Exchange] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rule": self.rule,
            "outcome": self.outcome,
            "reason": self.reason,
            "saga_id": self.saga_id,
            "exchanges": [exchange.to_json() for exchange in self.exchanges],
        }


def run_case(case: Case, target: Target, tokens: Tokens) -> CaseResult:
    run = Run(target, tokens, case.name)
    try:
        reason = case.check(run)
        outcome = "failed" if reason else "passed"
    except Skip as skip:
        reason, outcome = str(skip), "skipped"
    except TokenError as error:
        reason, outcome = str(error), "failed"
    effects_read = any(e.url.split("?")[0].endswith("/_saga/effects") for e in run.exchanges)
    if outcome == "failed" and target.check_effects and not effects_read:
        run.effects()  # what the participant really applied, for the report
    return CaseResult(case.name, case.rule, outcome, reason, run.saga_id, run.exchanges)


def certify(target: Target, tokens: Tokens, only: Sequence[str] = ()) -> list[CaseResult]:
    return [run_case(case, target, tokens) for case in CASES if not only or case.name in only]


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError("a header is 'Name: value'")
    return name.strip(), value.strip()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="saga certify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--execute", required=True, metavar="URL", help="the step's execute URL")
    p.add_argument("--compensate", required=True, metavar="URL", help="the step's compensate URL")
    p.add_argument("--payload", type=_json_arg, default={}, help="an execute payload that succeeds")
    p.add_argument(
        "--failing-payload", type=_json_arg, help="an execute payload refused as a business failure"
    )
    p.add_argument(
        "--compensate-payload", type=_json_arg, help="the compensate payload (default: the execute's output)"
    )
    p.add_argument("--header", type=_header, action="append", default=[], help="'Name: value', repeatable")
    p.add_argument("--audience", help="the ID token audience (default: the execute URL's origin)")
    p.add_argument("--token-file", help="a file holding the ID token to sign calls with")
    p.add_argument("--metadata-host", default=os.environ.get("GCE_METADATA_HOST"), help="HOST:PORT")
    p.add_argument("--step", default="certify", help="the X-Saga-Step to send")
    p.add_argument("--concurrency", type=int, default=20, help="concurrent duplicate deliveries")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer")
    p.add_argument(
        "--case", action="append", default=[], choices=[c.name for c in CASES], help="run only these"
    )
    p.add_argument("--no-effects", action="store_true", help="do not read GET /_saga/effects")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _render_exchange(exchange: Exchange, out: TextIO) -> None:
    headers = "  ".join(f"{k}: {v}" for k, v in exchange.headers.items() if k != "traceparent")
    body = "" if exchange.body is None else f"  body {json.dumps(exchange.body)}"
    print(f"        sent {exchange.method} {exchange.url}  {headers}{body}", file=out)
    if exchange.status is None:
        print(f"        got  no answer: {exchange.error}", file=out)
    else:
        got = "" if exchange.response is None else json.dumps(exchange.response)
        print(f"        got  {exchange.status} {got[:500]}", file=out)


def render(target: Target, results: list[CaseResult], out: TextIO) -> None:
    print(f"saga certify: execute {target.execute_url}, compensate {target.compensate_url}", file=out)
    for result in results:
        mark = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[result.outcome]
        print(f"{mark}  {result.name:<26} {result.rule}", file=out)
        if result.outcome == "failed":
            print(f"      broken rule: {result.rule}", file=out)
            print(f"      why: {result.reason}  (saga {result.saga_id})", file=out)
            for exchange in result.exchanges[:8]:
                _render_exchange(exchange, out)
        elif result.outcome == "skipped":
            print(f"      skipped: {result.reason}", file=out)
    counts = {o: sum(r.outcome == o for r in results) for o in ("passed", "failed", "skipped")}
    print(
        f"certify: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped",
        file=out,
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    token = None
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as error:
            print(f"saga certify: cannot read --token-file: {error}", file=sys.stderr)
            return 2
    target = Target(
        execute_url=args.execute,
        compensate_url=args.compensate,
        payload=args.payload,
        failing_payload=args.failing_payload,
        compensate_payload=args.compensate_payload,
        headers=dict(args.header),
        step=args.step,
        concurrency=max(2, args.concurrency),
        timeout=args.timeout,
        check_effects=not args.no_effects,
    )
    tokens = Tokens(args.audience or origin(args.execute), token=token, metadata_host=args.metadata_host)
    try:
        tokens.good()
    except TokenError as error:
        print(f"saga certify: {error} (give --token-file or --metadata-host)", file=sys.stderr)
        return 2
    results = certify(target, tokens, args.case)
    if args.json:
        report = {
            "passed": all(r.outcome != "failed" for r in results),
            "execute": target.execute_url,
            "compensate": target.compensate_url,
            "cases": [r.to_json() for r in results],
        }
        json.dump(report, out, indent=2)
        out.write("\n")
    else:
        render(target, results, out)
    return 1 if any(r.outcome == "failed" for r in results) else 0


def console() -> None:
    sys.exit(main())


__all__ = ["CaseResult", "Target", "certify", "main"]
