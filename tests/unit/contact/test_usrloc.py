"""Registered extensions from Kamailio's ``ul.dump`` answer."""

from __future__ import annotations

from drivers.sip.usrloc import registered_users

DUMP = {"Domains": [{"Domain": {"Domain": "location", "Size": 1024, "AoRs": [
    {"Info": {"AoR": "1001", "HashID": 271, "Contacts": [
        {"Contact": {"Address": "sip:1001@127.0.0.1:40311", "Expires": 297}}]}},
    {"Info": {"AoR": "1003@test.local", "HashID": 9, "Contacts": []}},
], "Stats": {"Records": 2, "Max-Slots": 1}}}]}  # fmt: skip


def test_every_aor_counts_with_its_user_part() -> None:
    assert registered_users(DUMP) == {"1001", "1003"}


def test_an_answer_of_another_shape_gives_nobody_rather_than_an_error() -> None:
    assert registered_users(None) == set()
    assert registered_users({"Domains": "garbage", "AoR": 5}) == set()
    assert registered_users([[{"AoR": ""}]]) == set()
