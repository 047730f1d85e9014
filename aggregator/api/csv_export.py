"""CSV exports of the HQ API: streamed, with every cell neutralised against formula injection.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and
some strip a leading tab or carriage return first. SMS text, caller names and numbers come
from outside callmesh, so such a text cell is written with a leading ``'`` (OWASP, "CSV
Injection"): ``=HYPERLINK(...)`` exports as ``'=HYPERLINK(...)`` and ``+4930123`` as
``'+4930123``, which spreadsheets show as text. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.responses import StreamingResponse

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FLUSH_BYTES = 64 * 1024


def neutral(value: Any) -> Any:
    """``value``, with a leading ``'`` if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return f"'{value}"
    return value


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterable[str]:
    """The rows as CSV text in pieces of about 64 KiB; the first row's keys are the header."""
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=[neutral(k) for k in row])
            writer.writeheader()
        writer.writerow({neutral(k): neutral(v) for k, v in row.items()})
        if buffer.tell() > FLUSH_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_response(filename: str, rows: Iterator[dict[str, Any]]) -> StreamingResponse:
    """A streamed ``text/csv`` attachment named ``<UTC time>-<filename>``."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="{stamp}-{filename}"'}
    return StreamingResponse(csv_lines(rows), media_type="text/csv", headers=headers)
