"""Pure rules of the SMS service: request validation, the per-SIM token bucket, and the
state machine of an outgoing SMS.

An outgoing SMS goes ``queued -> sending -> sent``; a failed attempt goes back to
``queued`` (after a growing delay) when the modem's error is transient and attempts are
left, else to ``failed`` with the reason. A queued SMS older than ``expire_s`` fails as
``expired``; one found ``sending`` after a restart counts that attempt as spent
(``interrupted``) and is queued again while attempts are left.

Exceptions::

    SmsError(error_id, message, details)    a request the gateway refuses (stable error_id)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from appliance.compliance.service import NumberError, normalize
from drivers.modem import pdu
from drivers.modem.errors import (
    CmsError,
    ModemError,
    NoNetwork,
    NoNetworkService,
    SimBusy,
    TransportError,
)

MAX_TEXT = 2000
USSD_CODE = re.compile(r"^[*#][*#0-9]{1,31}#?$")
# 3GPP TS 24.011 §8.2.5.4 (RP causes) and TS 27.005 §3.2.5: worth another try later.
TRANSIENT_CMS = frozenset({38, 41, 42, 47, 314, 331, 332, 500})


class SmsError(Exception):
    """A request the SMS or USSD service refuses; ``error_id`` is stable."""

    def __init__(self, error_id: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message
        self.details = details or {}


def check_number(number: str) -> str:
    """The destination without separators; SmsError ``bad-number`` if not a phone number."""
    try:
        return normalize(number)
    except NumberError as err:
        raise SmsError("bad-number", str(err)) from None


def count_parts(text: str, max_parts: int) -> int:
    """How many SMS parts ``text`` takes; SmsError when empty or longer than allowed."""
    if not text:
        raise SmsError("empty-text", "the text is empty")
    if len(text) > MAX_TEXT:
        raise SmsError("text-too-long", f"the text has {len(text)} characters (max {MAX_TEXT})")
    if any(ord(c) > 0xFFFF for c in text):
        raise SmsError(
            "unsupported-character", "characters beyond UCS-2 (e.g. emoji) cannot be sent"
        )
    parts = len(pdu.split_text(text)[1])
    if parts > max_parts:
        raise SmsError(
            "text-too-long",
            f"the text needs {parts} SMS parts; at most {max_parts} are allowed",
            {"parts": parts, "max_parts": max_parts},
        )
    return parts


def check_ussd(code: str) -> str:
    """A USSD code such as ``*100#``; SmsError ``bad-ussd-code`` otherwise."""
    if not USSD_CODE.match(code):
        raise SmsError("bad-ussd-code", f"{code!r} is not a USSD code (like *100# or *#06#)")
    return code


def transient(err: BaseException) -> bool:
    """Whether a failed send may succeed if tried again later."""
    if isinstance(err, CmsError):
        return err.code in TRANSIENT_CMS
    return isinstance(err, TransportError | NoNetwork | SimBusy | NoNetworkService | TimeoutError)


def describe(err: BaseException) -> str:
    """A short reason for a failed attempt."""
    if isinstance(err, TimeoutError):
        return "the modem did not finish sending in time"
    if isinstance(err, ModemError):
        return str(err)[:200]
    return repr(err)[:200]


@dataclass
class TokenBucket:
    """Up to ``capacity`` parts at once, refilled at ``rate`` parts per second."""

    rate: float
    capacity: float
    tokens: float = field(default=-1.0)
    stamp: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, cost: float, now: float) -> float:
        """Take ``cost`` tokens and return 0, or return the seconds until they are there."""
        cost = min(cost, self.capacity)
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


@dataclass(frozen=True)
class RetryRule:
    """How often and how soon a failed SMS is tried again, and when a queued one expires."""

    max_attempts: int
    retry_delay_s: float
    expire_s: float


def sending(
    record: dict[str, Any], channel: str, iccid: str, number: str, now: float
) -> dict[str, Any]:
    """The record as an attempt starts on ``channel`` with the SIM ``iccid``."""
    return {**record, "status": "sending", "channel": channel, "iccid": iccid,
            "sim_number": number, "attempts": record["attempts"] + 1, "updated": now}  # fmt: skip


def sent(record: dict[str, Any], refs: list[int], now: float) -> dict[str, Any]:
    """The record once the network accepted every part (``refs``: message references)."""
    return {**record, "status": "sent", "refs": refs, "reason": "", "updated": now, "sent": now}


def attempt_failed(
    record: dict[str, Any], reason: str, retry: bool, rule: RetryRule, now: float
) -> dict[str, Any]:
    """Queued again after a delay (transient error, attempts left), else failed."""
    attempts = int(record["attempts"])
    if retry and attempts < rule.max_attempts:
        delay = rule.retry_delay_s * 2 ** (attempts - 1)
        return {**record, "status": "queued", "reason": reason, "not_before": now + delay,
                "updated": now}  # fmt: skip
    if retry:
        reason = f"{reason} (gave up after {attempts} attempts)"
    return {**record, "status": "failed", "reason": reason, "updated": now}


def expired(record: dict[str, Any], rule: RetryRule, now: float) -> dict[str, Any] | None:
    """The failed record when a queued SMS waited longer than ``expire_s``, else None."""
    if now - float(record["created"]) <= rule.expire_s:
        return None
    reason = f"expired: no usable channel within {rule.expire_s:.0f} s"
    if record["reason"]:
        reason += f"; last error: {record['reason']}"
    return {**record, "status": "failed", "reason": reason, "updated": now}


def recovered(record: dict[str, Any], rule: RetryRule, now: float) -> dict[str, Any]:
    """A record found ``sending`` at start-up: that attempt was interrupted."""
    reason = "interrupted: the appliance stopped while the modem was sending"
    return attempt_failed({**record, "not_before": 0}, reason, True, rule, now)
