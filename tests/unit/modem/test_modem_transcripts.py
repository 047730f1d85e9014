"""Golden transcripts: captured modem bytes per profile, with the expected events beside them.

Each ``transcripts/*.txt`` file is a script: ``send`` starts a command, ``recv`` feeds bytes
(a Python string literal), ``flood N C`` feeds N copies of byte C, ``clock`` advances time,
``payload`` answers an SMS prompt. ``expect`` lines list, in order, what the sans-I/O stack
(protocol core, profile URC decoders, call tracker) must produce; invalid captures expect the
exact error.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from drivers.modem import urcs
from drivers.modem.calls import CallEvent, CallTracker
from drivers.modem.errors import ModemError
from drivers.modem.grammar import error_for
from drivers.modem.profiles import ModemProfile, get_profile
from drivers.modem.protocol import AtProtocol, Command, Prompt, Response, Urc

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.txt"))


class Replay:
    """Runs one transcript through the protocol core, profile decoders and call tracker."""

    def __init__(self) -> None:
        self.profile: ModemProfile = get_profile("generic")
        self.now = 0.0
        self.protocol = AtProtocol(urc_prefixes=self.profile.urc_prefixes)
        self.tracker = CallTracker(lambda: self.now)
        self.produced: list[str] = []

    def step(self, verb: str, rest: str) -> None:
        if verb == "profile":
            self.profile = get_profile(rest)
            self.protocol = AtProtocol(urc_prefixes=self.profile.urc_prefixes)
        elif verb == "send":
            text, *flags = rest.split()
            expect = tuple(f[7:] for f in flags if f.startswith("expect="))
            self.protocol.send(
                Command(text, expect, "raw" in flags, "prompt" in flags, "call" in flags)
            )
        elif verb == "payload":
            self.protocol.send_payload(rest)
        elif verb == "clock":
            self.now += float(rest)
        elif verb == "flood":
            count, char = rest.split()
            self.protocol.receive_data(char.encode() * int(count))
            self.drain()
        elif verb == "recv":
            self.protocol.receive_data(ast.literal_eval(rest).encode("latin-1"))
            self.drain()

    def drain(self) -> None:
        while True:
            try:
                event = self.protocol.next_event()
            except ModemError as err:
                self.produced.append(f"error {type(err).__name__}: {err}")
                continue
            if event is None:
                return
            self.render(event)

    def render(self, event: Response | Urc | Prompt) -> None:
        if isinstance(event, Prompt):
            self.produced.append(f"prompt {event.command}")
        elif isinstance(event, Response):
            self.produced.append(self.render_response(event))
        else:
            self.render_urc(event)

    def render_response(self, response: Response) -> str:
        text = f"response {response.command} {response.result.kind}"
        if not response.result.ok:
            err = error_for(response.command, response.result)
            text += f" {type(err).__name__}"
        return text + "".join(f" | {line}" for line in response.lines)

    def render_urc(self, urc: Urc) -> None:
        try:
            decoded = self.profile.decode(urc.line, urc.body)
        except ModemError as err:
            self.produced.append(f"error {type(err).__name__}: {err}")
            return
        if isinstance(decoded, urcs.Ring):
            self.calls(self.tracker.ring())
        elif isinstance(decoded, urcs.CallerId):
            self.calls(self.tracker.caller_id(decoded.number))
        elif isinstance(decoded, urcs.CallUpdate):
            self.calls(self.tracker.apply(decoded))
        elif decoded is None:
            self.produced.append(f"ignored {urc.line}")
        else:
            self.produced.append(f"urc {decoded!r}")

    def calls(self, events: list[CallEvent]) -> None:
        for e in events:
            direction = "in" if e.incoming else "out"
            text = f"call {e.idx} {e.state.value} {direction} {e.number or '-'}"
            if e.state is urcs.CallState.RELEASED:
                text += f" cause={e.cause} duration={e.duration:g}"
            self.produced.append(text)


def _parse(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    steps: list[tuple[str, str]] = []
    expected: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        verb, _, rest = line.partition(" ")
        if verb == "expect":
            expected.append(rest)
        else:
            steps.append((verb, rest))
    return steps, expected


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(path: Path) -> None:
    steps, expected = _parse(path)
    replay = Replay()
    for verb, rest in steps:
        replay.step(verb, rest)
    assert replay.produced == expected


def test_every_profile_has_a_transcript() -> None:
    names = {p.read_text().split("profile ", 1)[1].split()[0] for p in TRANSCRIPTS}
    assert {"generic", "huawei-e1550", "quectel-ec25", "simcom-sim7600"} <= names
