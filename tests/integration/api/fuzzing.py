"""schemathesis, bounded: every operation of an OpenAPI document, valid and invalid requests."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

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


def fuzz(schema: Any, token: str, checks: list[Check]) -> list[str]:
    """Every operation of the document, fuzzed; one entry per operation that failed."""
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
            except (Exception, BaseExceptionGroup) as err:  # noqa: BLE001 - report every operation
                failed.append(f"{operation.label} ({mode.value}): {err!r:.1500}")
    return failed
