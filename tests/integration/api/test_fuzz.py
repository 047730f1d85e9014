"""schemathesis against the OpenAPI documents of HQ and of the appliance.

Examples are generated from each document (valid requests, then invalid parameters and
bodies) and sent to the app its composition root builds, with an admin token. Every
answer must be one the document describes (the JSON schema of its body) and none may be
a 500: an unhandled exception is a bug, whatever the input. On the appliance the PBX and
the modems are not started here, so their routes answer 503 ``pbx-not-started`` /
``not-started`` by design; the PBX's call routes are fuzzed against a running PBX in
tests/integration/pbx/test_api_fuzz.py. Bounded so each document takes well under 60 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.integration.api.apps import HQ_TOKENS, LOCAL_TOKENS, appliance_app, hq_app

EXAMPLES = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
Check = Any


def no_unhandled_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 500 is an exception nothing handled; a designed 503 (service not started) is not."""
    assert response.status_code != 500, f"500 from {case.method} {case.formatted_path}"
    return None


def fuzz(app: FastAPI, token: str, checks: list[Check]) -> list[str]:
    """Every operation of the app's document, fuzzed; one line per operation that failed."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    failed: list[str] = []
    for found in schema.get_all_operations():
        operation = found.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @EXAMPLES
            def run(case: Any) -> None:
                case.call_and_validate(headers=headers, checks=checks)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: no parameters
            except (Exception, BaseExceptionGroup) as err:  # report every operation
                failed.append(f"{operation.label} ({mode.value}): {err!r:.1500}")
    return failed


def test_hq_api_answers_every_generated_request_within_its_document(tmp_path: Path) -> None:
    with hq_app(tmp_path) as (app, _):
        failed = fuzz(app, HQ_TOKENS["admin"], [not_a_server_error, response_schema_conformance])
    assert not failed, "\n\n".join(failed)


def test_appliance_api_answers_every_generated_request_within_its_document(
    tmp_path: Path,
) -> None:
    with appliance_app(tmp_path) as app:
        failed = fuzz(app, LOCAL_TOKENS["admin"], [no_unhandled_error, response_schema_conformance])
    assert not failed, "\n\n".join(failed)
