"""Fixtures: one PBX per module for call tests; every process is reaped in teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pbx.contact_env import CtiListener
from tests.integration.pbx.harness import (
    WEBHOOK_SECRET,
    Pbx,
    WebhookReceiver,
    require_debs,
    started,
    wait_for,
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
    with started(Pbx(root, webhook=webhook)) as instance:
        yield instance


@pytest.fixture
def fresh_pbx(tmp_path: Path) -> Iterator[Pbx]:
    require_debs()
    with started(Pbx(tmp_path)) as instance:
        yield instance


@pytest.fixture
def cti(site: Pbx) -> Iterator[CtiListener]:
    """The CTI stream of a contact-centre module's PBX (``site``), once its API answers."""
    wait_for(lambda: site.api("GET", "/contact/queues")[0] == 200, 5, site.output)
    listener = CtiListener(site)
    try:
        yield listener
    finally:
        listener.close()
