"""Rooms kept from the PMS's records (spec examples), and the rooms' links of the routing chain."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from appliance.hotel.calls import RoomCallDecider
from appliance.hotel.codes import RoomCodeDecider
from appliance.hotel.lamps import MessageLamps
from appliance.hotel.postings import Posting
from appliance.hotel.rooms import Guest, Room, RoomBook
from appliance.hotel.settings import DndSettings, RoomCodeSettings
from appliance.pbx.deciders import (
    OWN_NUMBERS,
    POLICY,
    ROUTE,
    DecisionChain,
    DialPlanDecider,
    RouteQuery,
)
from appliance.pbx.dialplan import Decision, DialPlan
from appliance.pbx.local_routes import local_routes
from appliance.pbx.settings import (
    DialPlanSettings,
    InboundRoute,
    MediaSettings,
    OutboundRoute,
    PromptSettings,
    RingGroup,
    Trunk,
)
from appliance.settings import ApplianceSettings
from drivers.daemon.config_layers import ConfigError, collect_layers, load_settings
from drivers.fias.grammar import parse_record
from drivers.fias.link import Guest as SwapGuest
from drivers.fias.link import RoomState
from tests.procs import write_yaml

ROOMS = {"2781": "201", "0330": "202", "312": "203", "332": "204"}


def book(*records: str) -> RoomBook:
    rooms = RoomBook(ROOMS, "international")
    for record in records:
        rooms.apply(parse_record(record.encode("latin-1")))
    return rooms


def test_check_in_to_a_vacant_room_sets_the_guest_and_opens_the_line() -> None:
    room = book("GI|RN2781|G#12345|GNGuest, Mr.|GLEA|GV3|GGA123|GSN|").room("2781")
    assert room == Room("2781", (Guest("12345", "Guest, Mr.", "EA"),), "international")
    assert room.guest_name == "Guest, Mr."


def test_check_in_with_a_class_of_service_uses_it() -> None:
    assert book("GI|RN0330|G#1|GNA|CS1|").room("0330").cos == "local"
    assert book("GI|RN0330|G#1|GNA|").room("330").occupied is False


def test_a_sharer_joins_and_check_out_of_one_guest_keeps_the_room_open() -> None:
    rooms = book(
        "GI|RN2781|G#12345|GNGuest, Mr.|GLEA|GSN|CS2|",
        "GI|RN2781|G#12381|GNSharer, Dr.|GLEA|GV0|GGA123|GSY|",
    )
    assert [g.name for g in rooms.room("2781").guests] == ["Guest, Mr.", "Sharer, Dr."]
    rooms.apply(parse_record(b"GO|RN2781|G#12345|GSY|"))
    assert rooms.room("2781") == Room("2781", (Guest("12381", "Sharer, Dr.", "EA"),), "national")


def test_check_out_bars_the_room_and_clears_dnd_lamp_and_name() -> None:
    rooms = book("GI|RN2781|G#12345|GNGuest|", "RE|RN2781|DNY|MLY|", "GO|RN2781|G#12345|GSN|")
    assert rooms.room("2781") == Room("2781")
    assert rooms.room("2781").cos == "internal"
    assert rooms.for_extension("201") == Room("2781")


def test_a_data_change_changes_only_the_listed_fields() -> None:
    rooms = book("GI|RN2781|G#12345|GNGuest, Mr.|GLEA|CS2|", "GC|RN2781|G#12345|GLGE|")
    assert rooms.room("2781").guests == (Guest("12345", "Guest, Mr.", "GE"),)
    assert rooms.room("2781").cos == "national"


def test_a_room_move_carries_the_statuses_to_the_empty_room_and_vacates_the_old() -> None:
    rooms = book(
        "GI|RN332|G#35869|GNShare1|GLEA|CS1|",
        "RE|RN332|MLY|",
        "GC|G#35869|GNShare1|GLGE|GV0|GA090616|GD090617|RN312|GSN|RO332|GSN|",
    )
    assert rooms.room("312") == Room("312", (Guest("35869", "Share1", "GE"),), "local", False, True)
    assert rooms.room("332") == Room("332")


def test_room_equipment_sets_class_of_service_dnd_and_lamp() -> None:
    rooms = book("GI|RN2781|G#1|GNA|", "RE|RN2781|CS2|DNN|", "RE|RN2781|MLY|G#1|")
    assert rooms.room("2781") == Room("2781", (Guest("1", "A", ""),), "national", False, True)
    rooms.apply(parse_record(b"RE|RN2781|CS9|DNY|"))
    assert (rooms.room("2781").cos, rooms.room("2781").dnd) == ("national", True)


def test_the_guests_dnd_sets_the_door_sign_which_check_out_and_a_move_out_clear() -> None:
    rooms = book("GI|RN2781|G#1|GNA|", "GI|RN332|G#2|GNB|")
    assert rooms.guest_dnd("0330", True) is None, "a vacant room has no guest to disturb"
    assert rooms.room("0330") == Room("0330")
    on = rooms.guest_dnd("2781", True)
    assert on is not None
    assert (on.dnd, on.door_sign) == (True, True)
    assert rooms.room("2781") == on
    rooms.apply(parse_record(b"RE|RN2781|DNN|"))
    assert (rooms.room("2781").dnd, rooms.room("2781").door_sign) == (False, True)
    rooms.apply(parse_record(b"GO|RN2781|G#1|GSN|"))
    assert rooms.room("2781") == Room("2781")
    rooms.guest_dnd("332", True)
    rooms.apply(parse_record(b"GC|G#2|RN312|GSN|RO332|GSN|"))
    assert (rooms.room("312").dnd, rooms.room("312").door_sign) == (True, False)
    assert rooms.room("332") == Room("332")
    again = RoomBook(ROOMS, "international")
    rooms.guest_dnd("312", False)
    rooms.guest_dnd("312", True)
    again.load(rooms.documents())
    assert again.room("312") == rooms.room("312")


def test_records_without_a_room_or_about_other_things_change_nothing() -> None:
    rooms = book("GI|G#1|GNA|", "WR|RN2781|DA001031|TI070000|")
    assert len(rooms) == 0


def test_a_resync_snapshot_is_the_truth_about_who_is_in_which_room() -> None:
    rooms = book("GI|RN2781|G#1|GNOld|CS1|", "GI|RN0330|G#2|GNGone|")
    rooms.apply_resync({
        "2781": RoomState("2781", (SwapGuest("1", "Old", "EA"),)),
        "0330": RoomState("0330"),
        "312": RoomState("312", (SwapGuest("3", "New", "FR"),)),
    })  # fmt: skip
    assert rooms.room("2781") == Room("2781", (Guest("1", "Old", "EA"),), "local")
    assert rooms.room("0330") == Room("0330")
    assert rooms.room("312").cos == "international"


def test_stored_documents_round_trip() -> None:
    rooms = book("GI|RN0330|G#2|GNGäst|GLGE|CS2|", "RE|RN0330|DNY|")
    again = RoomBook(ROOMS, "international")
    again.load(rooms.documents())
    assert again.rooms() == rooms.rooms()
    assert [r.room for r in again.rooms()] == ["0330", "2781", "312", "332"]


TRUNK = Trunk(name="carrier", host="127.0.0.1", port=5099)
PLAN = DialPlan(
    DialPlanSettings(
        owned_numbers=("+4930555000",),
        trunks=(TRUNK,),
        outbound=(
            OutboundRoute(name="emergency", pattern="112", trunk="carrier",
                          caller_id="+4930555000", cos="local"),
            OutboundRoute(name="national", pattern="0Z.", trunk="carrier",
                          caller_id="+4930555000", cos="national"),
            OutboundRoute(name="world", pattern="00.", trunk="carrier",
                          caller_id="+4930555000", cos="international"),
        ),
        class_of_service=dict.fromkeys(("201", "202", "100"), "international"),
    ),
    ["201", "202", "100"],
)  # fmt: skip


def decide(rooms: RoomBook, caller: str, dialled: str) -> Decision:
    decider = RoomCallDecider(rooms, lambda: PLAN, frozenset({"112"}))
    decision = decider.decide(RouteQuery(caller, dialled), PLAN.decide(caller, dialled))
    assert decision is not None
    return decision


def test_a_checked_out_room_cannot_dial_out_but_can_call_the_front_desk() -> None:
    rooms = book("GI|RN2781|G#1|GNGuest|", "GO|RN2781|G#1|")
    assert (decide(rooms, "201", "0301234").code, decide(rooms, "201", "0301234").reason) == (
        403, "room-barred",
    )  # fmt: skip
    assert decide(rooms, "201", "100").action == "extension"
    assert decide(rooms, "201", "100").caller_name == ""


def test_the_room_class_of_service_decides_which_routes_it_may_use() -> None:
    rooms = book("GI|RN2781|G#1|GNGuest|CS2|")
    assert decide(rooms, "201", "0301234").action == "trunk"
    refused = decide(rooms, "201", "00441234")
    assert (refused.code, refused.reason, refused.route) == (403, "class-of-service", "world")


def test_emergency_numbers_are_always_allowed() -> None:
    assert decide(book(), "201", "112").action == "trunk"


def test_an_emergency_call_alerts_the_front_desk_through_the_event_stream() -> None:
    alerts: list[tuple[str, dict[str, Any]]] = []
    decider = RoomCallDecider(book(), lambda: PLAN, frozenset({"112"}), None,
                              lambda kind, data: alerts.append((kind, data)))  # fmt: skip
    decision = decider.decide(RouteQuery("201", "112", "c9"), PLAN.decide("201", "112"))
    assert decision is not None
    assert decision.action == "trunk"
    assert alerts == [("hotel.emergency-call", {"call_id": "c9", "room": "2781",
                       "extension": "201", "dialled": "112", "guest": ""})]  # fmt: skip


def test_calls_to_a_vacant_room_ring_reception_unless_staff_call() -> None:
    rooms = book("GI|RN0330|G#1|GNGuest|")
    decider = RoomCallDecider(rooms, lambda: PLAN, frozenset(), "100")

    def to(caller: str, callee: str, from_trunk: bool = False) -> Decision | None:
        proposed = PLAN.local(callee)
        return decider.decide(RouteQuery(caller, callee, from_trunk=from_trunk), proposed)

    redirected = to("202", "201")
    assert redirected is not None
    assert (redirected.targets, redirected.route) == (("100",), "hotel:vacant:2781")
    assert redirected.caller_name == '"Guest"'
    assert to("+4930999", "201", from_trunk=True) == replace(redirected, caller_name="")
    assert to("100", "201") == PLAN.local("201")
    assert to("201", "202") == PLAN.local("202")


def dnd_decider(rooms: RoomBook, action: str) -> RoomCallDecider:
    dnd = DndSettings.model_validate({"action": action, "front_desk": "100"})
    return RoomCallDecider(rooms, lambda: PLAN, frozenset(), None, None, dnd)


def test_a_room_with_dnd_is_not_rung_calls_go_to_the_front_desk_or_get_busy() -> None:
    rooms = book("GI|RN2781|G#1|GNGuest|", "GI|RN0330|G#2|GNOther|", "RE|RN2781|DNY|")
    desk, busy = dnd_decider(rooms, "front-desk"), dnd_decider(rooms, "busy")
    room_202, room_201 = PLAN.local("202"), PLAN.local("201")
    assert room_202 is not None
    assert room_201 is not None
    for caller, from_trunk in (("202", False), ("+4930999", True)):
        query = RouteQuery(caller, "201", from_trunk=from_trunk)
        diverted = desk.decide(query, PLAN.local("201"))
        assert diverted is not None
        assert (diverted.action, diverted.targets, diverted.route) == (
            "extension", ("100",), "hotel:dnd:2781"
        )  # fmt: skip
        assert diverted.caller_name == ("" if from_trunk else '"Other"')
        refused = busy.decide(query, PLAN.local("201"))
        assert refused is not None
        assert (refused.action, refused.code, refused.reason) == ("reject", 486, "room-dnd")
    from_desk = desk.decide(RouteQuery("100", "201"), PLAN.local("201"))
    assert from_desk is not None
    assert (from_desk.code, from_desk.reason) == (486, "room-dnd")
    assert desk.decide(RouteQuery("201", "202"), PLAN.local("202")) == replace(
        room_202, caller_name='"Guest"'
    )  # fmt: skip
    rooms.apply(parse_record(b"RE|RN2781|DNN|"))
    assert desk.decide(RouteQuery("202", "201"), PLAN.local("201")) == replace(
        room_201, caller_name='"Other"'
    )  # fmt: skip


GROUPS = DialPlan(
    DialPlanSettings(
        ring_groups=(
            RingGroup(number="600", members=("201", "202", "100")),
            RingGroup(number="601", members=("201", "202"), strategy="sequential"),
        ),
        inbound=(InboundRoute(did="+4930555000", target="601"),),
        owned_numbers=("+4930555000",),
    ),
    ["201", "202", "100"],
)


def test_a_ring_group_skips_rooms_with_dnd_and_follows_the_dnd_action_when_all_are() -> None:
    rooms = book("GI|RN2781|G#1|GNA|", "GI|RN0330|G#2|GNB|", "RE|RN2781|DNY|")
    desk = RoomCallDecider(rooms, lambda: GROUPS, frozenset(), None, None,
                           DndSettings(action="front-desk", front_desk="100"))  # fmt: skip
    busy = RoomCallDecider(rooms, lambda: GROUPS, frozenset(), None, None, DndSettings())

    def to(decider: RoomCallDecider, caller: str, dialled: str, trunk: bool = False) -> Decision:
        proposed = GROUPS.decide(caller, dialled, trunk, dialled)
        decision = decider.decide(RouteQuery(caller, dialled, from_trunk=trunk), proposed)
        assert decision is not None
        return decision

    assert to(busy, "100", "600").targets == ("202", "100")
    sequential = to(busy, "+4930999", "+4930555000", trunk=True)
    assert (sequential.action, sequential.targets, sequential.serial) == ("group", ("202",), True)
    assert sequential.route == "inbound:+4930555000"
    rooms.guest_dnd("0330", True)
    refused = to(busy, "+4930999", "+4930555000", trunk=True)
    assert (refused.code, refused.reason, refused.route) == (
        486, "room-dnd", "hotel:dnd:inbound:+4930555000"
    )  # fmt: skip
    diverted = to(desk, "202", "601")
    assert (diverted.action, diverted.targets, diverted.route) == (
        "extension", ("100",), "hotel:dnd:group:601"
    )  # fmt: skip
    assert to(desk, "201", "600").targets == ("100",)
    worker = RouteQuery("wake-up", "601", raw={"caller": "wake-up", "media": "1"})
    assert busy.decide(worker, GROUPS.local("601")) == GROUPS.local("601")


def test_the_hotel_keeps_calls_to_rooms_and_groups_out_of_kamailios_local_routes() -> None:
    chain = DecisionChain()
    chain.add(DialPlanDecider(lambda: GROUPS), ROUTE)
    assert local_routes(GROUPS, chain, recorded=False).answers != ()
    chain.add(RoomCallDecider(book(), lambda: GROUPS, frozenset()), POLICY)
    assert local_routes(GROUPS, chain, recorded=False).answers == ()


def test_a_wake_up_call_from_a_media_worker_still_rings_a_room_with_dnd() -> None:
    rooms = book("GI|RN2781|G#1|GNGuest|", "RE|RN2781|DNY|")
    decider = dnd_decider(rooms, "busy")
    worker = RouteQuery("wake-up", "201", raw={"caller": "wake-up", "media": "1"})
    assert decider.decide(worker, PLAN.local("201")) == PLAN.local("201")
    phone = RouteQuery("wake-up", "201", raw={"caller": "wake-up", "media": "0"})
    refused = decider.decide(phone, PLAN.local("201"))
    assert refused is not None
    assert refused.reason == "room-dnd"


def test_dnd_to_the_front_desk_needs_its_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"front-desk needs hotel\.dnd\.front_desk"):
        DndSettings.model_validate({"action": "front-desk"})
    with pytest.raises(ConfigError, match=r"hotel\.dnd\.front_desk: extensions 100 are not"):
        load(tmp_path, {"dnd": {"action": "front-desk", "front_desk": "100"}})


def test_an_extension_that_is_no_room_is_not_concerned() -> None:
    assert decide(book(), "100", "00441234").action == "trunk"


def test_a_guest_calling_inside_the_hotel_presents_the_guest_name() -> None:
    rooms = book('GI|RN2781|G#1|GN"Guest", <Mr.>|CS3|')
    assert decide(rooms, "201", "100").caller_name == '"Guest, Mr."'
    assert decide(rooms, "201", "00441234").caller_name == ""
    assert decide(rooms, "201", "100").wire()["caller_name"] == '"Guest, Mr."'


BASE = {"site_id": "hotel-1", "profile": "hotel", "data_dir": "/var/lib/callmesh",
        "sip": {"extensions": [{"number": "201", "password": "secret-201-abc"}]}}  # fmt: skip


def load(tmp_path: Path, hotel: object) -> ApplianceSettings:
    write_yaml(tmp_path / "a.yaml", {**BASE, "hotel": hotel})
    return load_settings(ApplianceSettings, collect_layers(tmp_path / "a.yaml", None, ()))


def test_rooms_keep_leading_zeros_and_must_name_known_extensions(tmp_path: Path) -> None:
    rooms = load(tmp_path, {"rooms": [{"room": "0201", "extension": "201"}]}).hotel.rooms
    assert rooms[0].room == "0201"
    with pytest.raises(
        ConfigError, match=r"hotel\.vacant_redirect, hotel\.dnd\.front_desk: extensions 202 are"
    ):
        load(tmp_path, {"rooms": [{"room": "0202", "extension": "202"}]})
    with pytest.raises(ConfigError, match="room 0201 listed twice"):
        load(tmp_path, {"rooms": [{"room": "0201", "extension": "201"}] * 2})


class Pms:
    """Records what the codes asked of the PMS link."""

    def __init__(self, link_up: bool = True, occupied: bool = True) -> None:
        self.link_up = link_up
        self.occupied = occupied
        self.statuses: list[tuple[str, int]] = []
        self.postings: list[Posting] = []
        self.dnd: list[tuple[str, bool]] = []

    def guest_dnd(self, room: str, on: bool) -> bool:
        if self.occupied:
            self.dnd.append((room, on))
        return self.occupied

    def room_status(self, room: str, status: int) -> bool:
        if self.link_up:
            self.statuses.append((room, status))
        return self.link_up

    def post(self, posting: Posting) -> int:
        self.postings.append(posting)
        return len(self.postings)


NOON = dt.datetime(2026, 12, 7, 12, 30, 5, tzinfo=dt.UTC)


def dial(pms: Pms, dialled: str, caller: str = "201", **codes: Any) -> Decision:
    chain = DecisionChain()
    settings = RoomCodeSettings(**codes)
    chain.add(RoomCodeDecider(settings, book(), pms, lambda: PLAN, lambda: NOON), OWN_NUMBERS)
    chain.add(DialPlanDecider(lambda: PLAN), ROUTE)
    return chain.decide(RouteQuery(caller, dialled))


def test_a_room_status_code_sends_re_with_rs_for_the_callers_room() -> None:
    pms = Pms()
    assert (dial(pms, "*73").code, dial(pms, "*73").reason) == (603, "room-status-done")
    assert pms.statuses == [("2781", 3), ("2781", 3)]
    assert dial(pms, "*79").reason == "invalid-code"
    assert dial(Pms(link_up=False), "*73").reason == "invalid-code"


def test_dnd_codes_set_and_clear_the_guests_dnd_of_the_callers_room() -> None:
    pms = Pms()
    assert (dial(pms, "*65").code, dial(pms, "*65").reason) == (603, "dnd-on-done")
    assert dial(pms, "*66", caller="202").reason == "dnd-off-done"
    assert pms.dnd == [("2781", True), ("2781", True), ("0330", False)]
    assert dial(pms, "*651").reason == "unknown-service", "the codes are exact numbers"
    assert dial(Pms(occupied=False), "*65").reason == "invalid-code"
    assert dial(pms, "*65", caller="100").reason == "unknown-service"
    assert dial(pms, "*79", dnd_on="*78", dnd_off="*79", room_status="*2").reason == "dnd-off-done"


def test_dnd_codes_must_not_overlap_the_other_codes() -> None:
    with pytest.raises(ValueError, match="overlap"):
        RoomCodeSettings(dnd_on="*78")


def test_a_minibar_code_queues_a_posting_for_the_pms_to_price() -> None:
    pms = Pms()
    dial(pms, "*8123*2", caller="202")
    dial(pms, "*8777")
    assert [dict(p.fields) | {"RN": p.room} for p in pms.postings] == [
        {"RN": "0330", "PT": "M", "MA": "123", "M#": "2", "DA": "261207", "TI": "123005"},
        {"RN": "2781", "PT": "M", "MA": "777", "M#": "1", "DA": "261207", "TI": "123005"},
    ]


def test_minibar_priced_by_the_pbx_posts_the_total_and_refuses_unknown_articles() -> None:
    pms = Pms()
    assert dial(pms, "*812*3", minibar_prices={"12": 450}).code == 603
    assert dial(pms, "*813", minibar_prices={"12": 450}).reason == "invalid-code"
    assert dial(pms, "*812*0", minibar_prices={"12": 450}).reason == "invalid-code"
    assert dial(pms, "*812**", minibar_prices={"12": 450}).reason == "invalid-code"
    assert [dict(p.fields)["PT"] + dict(p.fields)["TA"] for p in pms.postings] == ["C1350"]


def test_codes_from_an_extension_that_is_no_room_are_left_to_the_dial_plan() -> None:
    pms = Pms()
    assert dial(pms, "*73", caller="100").reason == "unknown-service"
    assert (pms.statuses, pms.postings) == ([], [])


def test_codes_send_the_call_to_the_configured_spoken_targets() -> None:
    media = DialPlan(PLAN.settings, PLAN.extensions, MediaSettings(
        workers=1, prompts={"ok": PromptSettings(tone_hz=800), "bad": PromptSettings(tone_hz=400)},
    ))  # fmt: skip
    settings = RoomCodeSettings(accepted="announce:ok", invalid="announce:bad")
    decider = RoomCodeDecider(settings, book(), Pms(), lambda: media, lambda: NOON)
    assert decider.decide(RouteQuery("201", "*73"), None) == media.target("announce:ok")
    assert decider.decide(RouteQuery("201", "*70"), None) == media.target("announce:bad")


def test_message_lamp_notifies_each_registered_contact_of_the_room_phone() -> None:
    calls: list[tuple[Any, ...]] = []

    async def rpc(method: str, *params: Any) -> Any:
        calls.append((method, *params))
        if method == "ul.lookup":
            addresses = ("sip:201@10.0.0.5:5062", "sip:201@10.0.0.6")
            return {"AoR": "201", "Contacts": [{"Contact": {"Address": a}} for a in addresses]}
        return {}

    async def scenario() -> int:
        lamps = MessageLamps(book("GI|RN2781|G#1|GNA|", "RE|RN2781|MLY|"), rpc, "hotel.local")
        lamps.on_record(parse_record(b"RE|RN2781|MLY|"))
        lamps.on_record(parse_record(b"RE|RN2781|CS3|"))
        lamps.on_record(parse_record(b"RE|RN0999|MLY|"))
        await asyncio.sleep(0.05)
        return len(calls)

    assert asyncio.run(scenario()) == 3
    assert calls[0] == ("ul.lookup", "location", "201")
    assert [c[2] for c in calls[1:]] == ["sip:201@10.0.0.5:5062", "sip:201@10.0.0.6"]
    assert all(c[1] == "NOTIFY" and "Messages-Waiting: yes" in c[6] for c in calls[1:])
    assert "Event: message-summary\r\n" in calls[1][5]


class PhoneWakeUps:
    def __init__(self) -> None:
        self.set: list[tuple[str, str]] = []

    def phone_wake_up(self, room: str, hhmm: str) -> bool:
        self.set.append((room, hhmm))
        return hhmm < "2400"

    def phone_clear(self, room: str) -> bool:
        return bool(self.set)


def test_wake_up_codes_from_a_room_phone() -> None:
    wake_ups = PhoneWakeUps()
    decider = RoomCodeDecider(RoomCodeSettings(), book(), Pms(), lambda: PLAN, lambda: NOON,
                              wake_ups)  # fmt: skip

    def reason(dialled: str) -> str:
        decision = decider.decide(RouteQuery("201", dialled), None)
        assert decision is not None
        return decision.reason

    assert reason("*56") == "invalid-code"
    assert reason("*550630") == "wake-up-done"
    assert reason("*55063") == "invalid-code"
    assert reason("*552500") == "invalid-code"
    assert reason("*56") == "wake-up-clear-done"
    assert wake_ups.set == [("2781", "0630"), ("2781", "2500")]
