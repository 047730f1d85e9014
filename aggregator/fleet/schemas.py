"""What operators send about the fleet (API bodies and console forms), validated."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

Hhmm = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
NUMBER_PUNCTUATION = " ().-"


class HourWindow(BaseModel):
    start: Hhmm
    end: Hhmm
    days: list[Annotated[int, Field(ge=0, le=6)]] = [0, 1, 2, 3, 4, 5, 6]


class Limits(BaseModel):
    """Limits of a SIM or group; a field left out is not set by HQ."""

    calls_per_day: int | None = Field(None, ge=0)
    minutes_per_day: float | None = Field(None, ge=0)
    minutes_per_month: float | None = Field(None, ge=0)
    max_call_s: int | None = Field(None, ge=1)
    hours: list[HourWindow] | None = None


class GroupMove(BaseModel):
    group: str = Field(min_length=1, max_length=64)


class SlotSelect(BaseModel):
    slot: int = Field(ge=0, le=7)


class SiteMove(BaseModel):
    site: str = Field(min_length=1, max_length=64)


class DncEntry(BaseModel):
    reason: str = Field("", max_length=256)


def plain_number(text: str) -> str | None:
    """A phone number without punctuation (3 to 20 digits, + allowed), or None."""
    plain = "".join(c for c in text.strip() if c not in NUMBER_PUNCTUATION)
    digits = plain.removeprefix("+")
    return plain if digits.isdigit() and 3 <= len(digits) <= 20 else None
