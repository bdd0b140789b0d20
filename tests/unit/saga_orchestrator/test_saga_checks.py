from __future__ import annotations

from saga_orchestrator.checks import FieldChecks
from saga_orchestrator.errors import FieldError
from saga_orchestrator.settings import Settings

SETTINGS = Settings.from_env({})


def test_refs_may_name_any_step_when_no_step_list_is_given_but_must_be_well_formed():
    checks = FieldChecks(SETTINGS)
    payload = {"a": [{"$ref": "steps.anything.output.x"}], "b": {"$ref": "steps..output"}}
    checks.refs(payload, "p", None)
    checks.refs({"$ref": "steps.later.output"}, "q", ["earlier"])
    assert checks.errors == [
        FieldError("p.b", "$ref 'steps..output' must look like steps.<name>.output[.<key>...]"),
        FieldError("q", "$ref 'steps.later.output' names step 'later', which does not run before this call"),
    ]


def test_a_secret_header_is_a_secret_name_or_a_pinned_version():
    checks = FieldChecks(SETTINGS)
    found = checks.secret_headers(
        {"X-Key": "api-key", "X-Pinned": {"secret": "api-key", "version": 3}, "x-plain": "other"},
        "s",
        headers=["X-Plain"],
    )
    assert found == {
        "X-Key": ("api-key", "latest"),
        "X-Pinned": ("api-key", "3"),
        "x-plain": ("other", "latest"),
    }
    assert checks.errors == [FieldError("s.x-plain", "is also given in headers")]


def test_a_bad_field_reports_its_problem_and_yields_the_default_so_checking_goes_on():
    checks = FieldChecks(SETTINGS)
    assert checks.method("FETCH", "m") == "POST"
    assert checks.auth("basic", "a") == "oidc"
    assert checks.timeout(0, "t") == SETTINGS.default_step_timeout_seconds
    assert checks.attempts(True, "n", 4) == 4
    assert [error.field for error in checks.errors] == ["m", "a", "t", "n"]
