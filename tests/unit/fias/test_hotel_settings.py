"""The hotel.pms settings: spec limits enforced, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.settings import ApplianceSettings
from drivers.daemon.config_layers import ConfigError, collect_layers, load_settings
from tests.procs import write_yaml

BASE = {"site_id": "hotel-1", "profile": "hotel", "data_dir": "/var/lib/callmesh"}


def load(tmp_path: Path, hotel: object) -> ApplianceSettings:
    write_yaml(tmp_path / "a.yaml", {**BASE, "hotel": hotel})
    return load_settings(ApplianceSettings, collect_layers(tmp_path / "a.yaml", None, ()))


def test_no_pms_section_means_no_pms_link(tmp_path: Path) -> None:
    assert load(tmp_path, {}).hotel.pms is None


def test_pms_defaults_follow_the_spec_timeouts(tmp_path: Path) -> None:
    pms = load(tmp_path, {"pms": {"host": "10.0.0.5"}}).hotel.pms
    assert pms is not None
    assert (pms.port, pms.answer_timeout_s, pms.alive_interval_s) == (5010, 30.0, 300.0)


def test_an_alive_check_more_often_than_five_minutes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hotel\.pms\.alive_interval_s"):
        load(tmp_path, {"pms": {"alive_interval_s": 60}})


def test_a_backoff_ceiling_below_its_floor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reconnect_max_s"):
        load(tmp_path, {"pms": {"reconnect_min_s": 10, "reconnect_max_s": 5}})


def test_the_guests_dnd_codes_may_not_overlap_a_room_code_or_an_agent_code() -> None:
    with pytest.raises(ValueError, match=r"codes \*7 and \*78 overlap"):
        ApplianceSettings.model_validate({**BASE, "hotel": {"codes": {"dnd_on": "*78"}}})
    doc = {**BASE, "sip": {"extensions": [{"number": "1003", "password": "secret-pw-1003"}]},
           "pbx": {"enabled": True, "media": {"workers": 1}},
           "hotel": {"rooms": [{"room": "0101", "extension": "1003"}]},
           "contact": {"queues": {"desk": {"number": "700", "agents": ["1003"]}},
                       "agent_codes": {"logout": "*66"}}}  # fmt: skip
    with pytest.raises(ValueError, match=r"overlap other feature codes: \*66 and \*66"):
        ApplianceSettings.model_validate(doc)
