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

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.integration.api.apps import HQ_TOKENS, LOCAL_TOKENS, appliance_app, hq_app
from tests.integration.api.fuzzing import fuzz, no_unhandled_error


def test_hq_api_answers_every_generated_request_within_its_document(tmp_path: Path) -> None:
    with hq_app(tmp_path) as (app, _):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        checks = [not_a_server_error, response_schema_conformance]
        failed = fuzz(schema, HQ_TOKENS["admin"], checks)
    assert not failed, "\n\n".join(failed)


def test_appliance_api_answers_every_generated_request_within_its_document(
    tmp_path: Path,
) -> None:
    with appliance_app(tmp_path) as app:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        checks = [no_unhandled_error, response_schema_conformance]
        failed = fuzz(schema, LOCAL_TOKENS["admin"], checks)
    assert not failed, "\n\n".join(failed)
