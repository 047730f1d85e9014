"""The demo's hotel: a valid hotel appliance linked to the demo's PMS simulator, and a
manifest entry naming its rooms, their SIP credentials and the simulator's control URL."""

from __future__ import annotations

from pathlib import Path

from appliance.demo.plan import ServicePlan, plan_services
from appliance.settings import ApplianceSettings


def planned(tmp_path: Path) -> dict[str, ServicePlan]:
    return {plan.name: plan for plan in plan_services(tmp_path)}


def test_the_hotel_is_a_hotel_appliance_linked_to_the_demo_pms(tmp_path: Path) -> None:
    plans = planned(tmp_path)
    hotel, pms = plans["hotel"], plans["pms"]
    settings = ApplianceSettings.model_validate(hotel.config)
    assert settings.profile == "hotel"
    assert settings.pbx.media.workers == 1
    assert settings.hotel.pms is not None
    assert pms.extras["fias"] == f"127.0.0.1:{settings.hotel.pms.port}"
    assert [(r.room, r.extension) for r in settings.hotel.rooms] == [
        ("0101", "4101"), ("0102", "4102"), ("0103", "4103"), ("0104", "4104")
    ]  # fmt: skip
    assert settings.hotel.vacant_redirect == settings.hotel.wake_up.front_desk == "4000"
    assert settings.hotel.dnd.front_desk == "4000"
    command = pms.command()
    assert command[0] == "pms-simulator"
    assert command[command.index("--port") + 1] == str(settings.hotel.pms.port)
    assert command[command.index("--rooms") + 1] == "0101,0102,0103,0104"


def test_the_manifest_names_the_rooms_their_credentials_and_the_pms_control(
    tmp_path: Path,
) -> None:
    plans = planned(tmp_path)
    hotel, pms = plans["hotel"], plans["pms"]
    passwords = {e["number"]: e["password"] for e in hotel.extras["sip"]["extensions"]}
    rooms = hotel.extras["hotel"]["rooms"]
    assert [r["room"] for r in rooms] == ["0101", "0102", "0103", "0104"]
    assert all(r["password"] == passwords[r["extension"]] for r in rooms)
    assert hotel.extras["hotel"]["front_desk"] in passwords
    assert hotel.extras["hotel"]["pms_control"] == pms.url
    codes = ApplianceSettings.model_validate(hotel.config).hotel.codes
    assert hotel.extras["hotel"]["codes"] == {
        key: getattr(codes, key) for key in hotel.extras["hotel"]["codes"]
    }
    assert (codes.dnd_on, codes.dnd_off) == ("*65", "*66")
    assert pms.published == ("control",)


def test_the_hotel_comes_up_in_the_background_after_its_pms(tmp_path: Path) -> None:
    names = list(planned(tmp_path))
    assert names.index("pms") < names.index("hotel")
    assert [p.name for p in plan_services(tmp_path) if p.background] == ["hotel"]


def test_the_hotel_has_its_own_ports(tmp_path: Path) -> None:
    plans = planned(tmp_path)
    pbx = {name: p.config["pbx"] for name, p in plans.items() if "pbx" in p.config}
    keys = ("sip_port", "evapi_port", "route_port", "rtpengine_ng_port")
    ports = [settings[key] for settings in pbx.values() for key in keys]
    ports += [p.port for p in plans.values() if p.port]
    ports.append(pbx["hotel"]["media"]["port_base"])
    assert len(ports) == len(set(ports))
    low, high = pbx["hotel"]["rtp_port_min"], pbx["hotel"]["rtp_port_max"]
    for name, other in pbx.items():
        if name != "hotel":
            assert high < other["rtp_port_min"] or low > other["rtp_port_max"], name
