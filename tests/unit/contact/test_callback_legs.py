"""A media worker's call back to an outside caller for an agent of another site: let
through with the site's rights only while that callback try is under way."""

from __future__ import annotations

from appliance.contact.callback_legs import CallbackLegDecider
from appliance.pbx.deciders import DecisionChain, DialPlanDecider, RouteQuery
from appliance.pbx.dialplan import Decision, DialPlan
from appliance.pbx.settings import DialPlanSettings

PLAN = DialPlan(
    DialPlanSettings.model_validate({
        "owned_numbers": ["+4930555000"],
        "trunks": [{"name": "carrier", "host": "192.0.2.10", "port": 5060}],
        "outbound": [
            {"name": "national", "pattern": "0Z.", "trunk": "carrier", "strip": 1,
             "prepend": "+49", "caller_id": "+4930555000", "cos": "national"},
            {"name": "international", "pattern": "00.", "trunk": "carrier", "strip": 2,
             "prepend": "+", "caller_id": "+4930555000", "cos": "international"},
        ],
        "class_of_service": {"1001": "international"},
    }),
    ["1001", "1002"],
)  # fmt: skip
TRIES = {("2001", "0301234567"), ("2001", "00441234567"), ("1001", "0301234567")}


def chain() -> DecisionChain:
    routes = DecisionChain()
    routes.add(CallbackLegDecider(lambda a, n: (a, n) in TRIES, lambda: PLAN, None), 50)
    routes.add(DialPlanDecider(lambda: PLAN), 100)
    return routes


def worker(caller: str, dialled: str) -> RouteQuery:
    return RouteQuery(caller, dialled, call_id="leg-1", raw={"media": "1"})


def test_the_try_goes_out_with_the_sites_caller_id() -> None:
    decision = chain().decide(worker("2001", "0301234567"))
    assert (decision.action, decision.uri) == ("trunk", "sip:+49301234567@192.0.2.10:5060")
    assert (decision.caller_id, decision.route) == ("+4930555000", "national")


def test_the_sites_default_class_of_service_applies() -> None:
    decision = chain().decide(worker("2001", "00441234567"))
    assert (decision.action, decision.reason) == ("reject", "class-of-service")


def test_only_the_number_of_a_try_under_way_is_let_through() -> None:
    for query in (worker("2001", "0309999999"), worker("2002", "0301234567")):
        decision = chain().decide(query)
        assert (decision.action, decision.reason) == ("reject", "not-an-extension"), query


def test_other_calls_keep_their_usual_path() -> None:
    phone = RouteQuery("2001", "0301234567", call_id="c-1", raw={"media": "0"})
    assert chain().decide(phone).reason == "not-an-extension"
    peer = RouteQuery("2001", "0301234567", from_peer=True, raw={"media": "1", "peer": "1"})
    assert CallbackLegDecider(lambda a, n: True, lambda: PLAN, None).decide(peer, None) is None
    local_agent = chain().decide(worker("1001", "00441234567"))
    assert local_agent.action == "trunk", "a local agent keeps its own class of service"
    to_extension = chain().decide(worker("2001", "1002"))
    assert (to_extension.action, to_extension.route) == ("extension", "extension")
    refused = Decision("reject", code=403, reason="compliance")
    decider = CallbackLegDecider(lambda a, n: True, lambda: PLAN, None)
    assert decider.decide(worker("2001", "0301234567"), refused) is refused
