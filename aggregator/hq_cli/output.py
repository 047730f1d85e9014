"""What `callmesh hq` prints or writes: tables for people, JSON, CSV and XLSX files.

Records from HQ nest (a CDR's recording, a SIM's limits); CSV and XLSX get them flattened
to dotted columns (``recording.state``), lists as JSON text. Text from outside callmesh
never runs as a formula: CSV cells are neutralised as the API's exports are
(``aggregator/api/csv_export.py``), XLSX cells are written as typed strings.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from aggregator.hq_cli.errors import EXIT_USAGE, HqCliError

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

CELL_WIDTH = 40
PROGRESS_EVERY_S = 0.2


@dataclass
class Result:
    """What a command found: records, the columns a table shows, the JSON to print."""

    rows: list[dict[str, Any]]
    columns: Sequence[str]
    raw: Any = None
    sheet: str = "callmesh"
    notes: list[str] = field(default_factory=list)


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One level of dotted keys; lists become JSON text."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value, separators=(",", ":"))
        else:
            flat[name] = value
    return flat


def all_columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every key of every row, in the order first seen."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain text table; long cells are cut to ``CELL_WIDTH`` characters."""
    if not rows:
        return "(none)"
    flat = [flatten(r) for r in rows]
    cells = [[_cell(r.get(c)) for c in columns] for r in flat]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = [_line(columns, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(line, widths) for line in cells]
    return "\n".join(lines)


def record(row: dict[str, Any]) -> str:
    """One record as ``key: value`` lines."""
    flat = flatten(row)
    width = max((len(k) for k in flat), default=0)
    return "\n".join(f"{k.ljust(width)}  {_text(v)}" for k, v in flat.items())


def write_csv(rows: Sequence[dict[str, Any]], sink: IO[str]) -> None:
    """Flattened rows as CSV, neutralised against formula injection."""
    from aggregator.api.csv_export import neutral  # with FastAPI: only when a CSV is written

    flat = [flatten(r) for r in rows]
    writer = csv.DictWriter(sink, fieldnames=[neutral(c) for c in all_columns(flat)])
    writer.writeheader()
    for row in flat:
        writer.writerow({neutral(k): neutral(v) for k, v in row.items()})


def write_xlsx(rows: Sequence[dict[str, Any]], path: Path, sheet: str) -> None:
    """Flattened rows as one XLSX sheet with a bold header row."""
    from openpyxl import Workbook  # slow to import: only when a workbook is written
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    flat = [flatten(r) for r in rows]
    columns = all_columns(flat)
    try:
        sink = path.open("wb")
    except OSError as err:
        raise HqCliError("export-unwritable", f"{path}: {err.strerror}", EXIT_USAGE) from None
    book = Workbook(write_only=True)
    ws = book.create_sheet(sheet[:31])
    header = [WriteOnlyCell(ws, value=_xlsx_text(c)) for c in columns]
    for cell in header:
        cell.font = Font(bold=True)
    ws.append(header)
    for row in flat:
        ws.append([_xlsx_cell(ws, row.get(c)) for c in columns])
    with sink:
        book.save(sink)


class Progress:
    """A progress line on stderr for exports and downloads, shown only on a terminal."""

    def __init__(self, stream: IO[str] | None = None, enabled: bool | None = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._last = 0.0
        self._shown = False

    def rows(self, count: int, what: str) -> None:
        """``count`` records fetched so far."""
        self._show(f"{count} {what} fetched")

    def transfer(self, done: int, total: int | None) -> None:
        """``done`` bytes of ``total`` (None: unknown)."""
        if total:
            self._show(f"{100 * done // total:3d}% {_size(done)} of {_size(total)}")
        else:
            self._show(_size(done))

    def finish(self) -> None:
        """End the line, if one was drawn."""
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()

    def _show(self, text: str) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        self._shown = True
        self._stream.write(f"\r{text}\x1b[K")
        self._stream.flush()


def _size(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB" if count >= 100_000 else f"{count / 1000:.1f} kB"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _cell(value: Any) -> str:
    text = _text(value).replace("\n", " ")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _xlsx_text(value: str) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", value)


def _xlsx_cell(ws: WriteOnlyWorksheet, value: Any) -> Any:
    from openpyxl.cell import WriteOnlyCell

    if value is None or isinstance(value, bool | int | float):
        return value
    cell = WriteOnlyCell(ws, value=_xlsx_text(str(value)))
    cell.data_type = "s"  # text stays text, even when it starts with "="
    return cell
