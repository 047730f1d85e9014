"""schemathesis against the call API of a running PBX (Kamailio, rtpengine, its store).

Every operation of the PBX's OpenAPI document gets generated valid and invalid requests
with an operator token: CDR searches with any since/cursor/number, click-to-dial and
conferences to any number (no media worker is configured, so they are refused with
``media-workers-busy``), hang-up, recording and three-way on calls that do not exist.
No answer may be a 500 and every body must match the document.
"""

from __future__ import annotations

import schemathesis
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.integration.api.fuzzing import fuzz, no_unhandled_error
from tests.integration.pbx.harness import API_TOKEN, Pbx


def test_call_api_answers_every_generated_request_within_its_document(pbx: Pbx) -> None:
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{pbx.api_port}/openapi.json")
    failed = fuzz(schema, API_TOKEN, [no_unhandled_error, response_schema_conformance])
    assert not failed, "\n\n".join(failed)
