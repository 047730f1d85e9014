"""Fixtures: one PBX per module for call tests; every process is reaped in teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pbx.harness import (
    WEBHOOK_SECRET,
    Pbx,
    WebhookReceiver,
    no_daemons_left,
    require_debs,
)


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def pbx(
    tmp_path_factory: pytest.TempPathFactory, webhook_receiver: WebhookReceiver
) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path_factory.mktemp("pbx")
    webhook = {"url": webhook_receiver.url, "secret": WEBHOOK_SECRET}
    instance = Pbx(root, webhook=webhook)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


@pytest.fixture
def fresh_pbx(tmp_path: Path) -> Iterator[Pbx]:
    require_debs()
    instance = Pbx(tmp_path)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(tmp_path)
