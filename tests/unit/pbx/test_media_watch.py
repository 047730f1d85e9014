"""Which side of a call went silent, from rtpengine's ng ``query`` answer."""

from __future__ import annotations

from typing import Any

from appliance.pbx.control import silent_side


def _query(caller_last: float, callee_last: float) -> dict[str, Any]:
    def tag(last: float) -> dict[str, Any]:
        return {"medias": [{"streams": [{"last packet": last}, {"last packet": 0}]}]}

    return {"result": "ok", "tags": {b"ftag": tag(caller_last), b"ttag": tag(callee_last)}}


def test_the_side_without_recent_rtp_is_named() -> None:
    assert silent_side(_query(100, 200), "ftag", since=150) == "caller"
    assert silent_side(_query(200, 100), "ftag", since=150) == "callee"
    assert silent_side(_query(200, 200), "ftag", since=150) is None


def test_a_call_rtpengine_forgot_counts_as_silent() -> None:
    assert silent_side({}, "ftag", since=150) == "caller"
    assert silent_side({"tags": {"ftag": {"medias": []}}}, "ftag", since=150) == "caller"
