"""``sync.endpoints``: the aggregator nodes a site tries in turn."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from appliance.settings import SyncSettings


def test_a_single_endpoint_is_a_one_node_list() -> None:
    sync = SyncSettings(endpoint="tcp://hq:5570")
    assert sync.nodes() == ["tcp://hq:5570"]


def test_endpoints_are_tried_in_the_order_listed() -> None:
    sync = SyncSettings(endpoints=["tcp://hq1:5570", "tcp://hq2:5570"])
    assert sync.nodes() == ["tcp://hq1:5570", "tcp://hq2:5570"]


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        (["http://hq:5570"], "is not tcp://"),
        (["tcp://hq:5570", "tcp://hq:5570"], "twice"),
    ],
)
def test_bad_endpoint_lists_are_refused_with_the_reason(endpoints: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SyncSettings(endpoints=endpoints)
