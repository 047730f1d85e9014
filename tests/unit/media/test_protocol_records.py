"""The control link's records behave as the frozen dataclasses they replaced: built by
position or keyword with their defaults, compared and hashed by value, frozen, and a
constructor call that does not fit raises TypeError."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from drivers.media.protocol import COMMANDS, EVENTS, GsmIncoming, LegEvent, Originate


def test_a_record_takes_positions_keywords_and_its_defaults() -> None:
    leg = LegEvent("c1", "ended", code=486)
    assert (leg.id, leg.state, leg.code, leg.reason, leg.answered) == ("c1", "ended", 486, "",
                                                                       False)  # fmt: skip
    assert repr(leg) == "LegEvent(id='c1', state='ended', code=486, reason='', answered=False)"


def test_each_record_gets_its_own_default_mapping() -> None:
    first, second = Originate(id="a", to="1002"), Originate(id="b", to="1003")
    assert first.headers == {}
    assert first.headers is not second.headers
    assert not hasattr(Originate, "headers"), "a factory's field is no class attribute"


def test_records_compare_and_hash_by_type_and_value() -> None:
    assert LegEvent("c1", "ringing") == LegEvent(id="c1", state="ringing")
    assert LegEvent("c1", "ringing") != LegEvent("c1", "answered")
    assert hash(LegEvent("c1", "ringing")) == hash(LegEvent("c1", "ringing"))
    assert len({LegEvent("c1", "ringing"), LegEvent("c1", "ringing")}) == 1


def test_a_record_is_frozen() -> None:
    leg = LegEvent("c1", "ringing")
    with pytest.raises(FrozenInstanceError):
        leg.code = 180  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del leg.code


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {"state": "ringing"}, "id is missing"),
        (("c1", "ringing"), {"cause": 3}, "no field cause"),
        (("c1", "ringing"), {"id": "c2"}, "id given twice"),
        (("c1", "ringing", 0, "", False, 1), {}, "6 positional arguments"),
    ],
)
def test_a_call_that_does_not_fit_the_fields_raises_type_error(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    untyped: Any = LegEvent  # the calls mypy would refuse, made anyway
    with pytest.raises(TypeError, match=message):
        untyped(*args, **kwargs)


def test_a_field_named_after_a_keyword_keeps_its_wire_name() -> None:
    wires = {name: wire for name, wire, _, _ in GsmIncoming.FIELDS}
    assert wires["from_"] == "from"
    assert all(record.FIELDS or record.TYPE in ("gsm-stats", "quit")
               for record in (*COMMANDS.values(), *EVENTS.values()))  # fmt: skip
