"""The one error of `callmesh hq` and its exit codes.

Exit codes: 0 done; 1 HQ failed or answered something unexpected; 2 usage, configuration
or a request HQ found invalid; 3 the token was refused; 4 not found (or gone); 5 HQ
could not be reached in time.
"""

from __future__ import annotations

from typing import Any

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DENIED = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5


class HqCliError(Exception):
    """A failure reported to the user: a stable ``error_id``, a message, what to do next."""

    def __init__(
        self,
        error_id: str,
        message: str,
        exit_code: int = EXIT_FAILURE,
        hint: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message
        self.exit_code = exit_code
        self.hint = hint
        self.details = details or {}

    def lines(self) -> list[str]:
        """What stderr shows: the error, each problem HQ named, then the hint."""
        shown = [f"error {self.error_id}: {self.message}"]
        for problem in self.details.get("problems", []):
            if isinstance(problem, dict):
                shown.append(f"  {_problem(problem)}")
        if self.hint:
            shown.append(f"hint: {self.hint}")
        return shown


def _problem(problem: dict[str, Any]) -> str:
    """A field's problem as ``field: problem``; a whole-directory one as ``entries: message``."""
    if "where" in problem:
        where = str(problem["where"]).removeprefix("body.")
        return f"{where}: {problem.get('problem', '?')}"
    entries = problem.get("entries")
    named = ", ".join(map(str, entries)) if isinstance(entries, list) and entries else "?"
    return f"{named}: {problem.get('message', '?')} ({problem.get('error_id', '?')})"
