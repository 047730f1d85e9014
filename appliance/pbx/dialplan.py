"""The dial plan: validated once, then asked for a decision on every call Kamailio routes.

Order of a decision for a call from an extension: the dialled number is an extension, a
ring group, or matches exactly one outbound route (validation guarantees at most one);
class of service is checked before the trunk is chosen. A call from a trunk is routed by
its dialled number (DID) through the inbound routes only. Caller ID on a trunk is always
the route's ``caller_id``, which validation requires to be a number the site owns. A
route whose trunk is a GSM trunk group (``pbx.gsm.groups``) answers action ``gsm`` with
the number to dial in ``uri`` and the group in ``trunk``; the GSM trunk service picks the
channel (appliance/pbx/gsm.py), and the call presents that SIM's own number.

Targets (inbound routes, forwards, IVR options) are an extension, a ring group,
``announce:<prompt>`` or ``ivr:<flow>`` (a ``pbx.media.ivr`` menu or an IVR flow of
``appliance.ivr``: ``flows`` names the current ones, API flows included); the last two,
feature codes and the users ``announce-<prompt>``, ``ivr-<flow>``, ``echo`` and
``room-<n>`` are served by the media workers (action ``media``, ``uri`` is the worker's
service user). Recording follows the route's ``recording`` (outbound or inbound), then
``recording_by_extension`` of the caller, then of the callee, then ``recording`` (a
decision that leaves ``recording`` unset, e.g. a call from another site or over a GSM
trunk, gets this when it is answered); media calls are never recorded.

Pattern language (outbound routes): digits, ``X`` (0-9), ``N`` (2-9), ``Z`` (1-9),
``[..]`` sets with ranges, and a final ``.`` meaning one or more further digits.

Exceptions::

    DialPlanError      the configuration is inconsistent; ``problems`` names each entry
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from appliance.pbx.settings import (
    CosLevel,
    DialPlanSettings,
    GsmSettings,
    MediaSettings,
    OutboundRoute,
)

COS_RANK: dict[str, int] = {"internal": 0, "local": 1, "national": 2, "international": 3}
_ALL = frozenset("0123456789")
_HEADER_UNSAFE = str.maketrans(dict.fromkeys('"\\\r\n', " "))
_CLASSES = {"X": _ALL, "N": frozenset("23456789"), "Z": frozenset("123456789")}


class DialPlanError(ValueError):
    """The dial plan is inconsistent; one line per problem, naming the entries."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("dial plan: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Pattern:
    """A compiled outbound pattern: one digit set per position, plus an open tail."""

    text: str
    positions: tuple[frozenset[str], ...]
    open_tail: bool

    def matches(self, number: str) -> bool:
        """Whether ``number`` (digits only) matches."""
        if not number.isdigit() or len(number) < len(self.positions):
            return False
        if len(number) > len(self.positions) and not self.open_tail:
            return False
        if self.open_tail and len(number) == len(self.positions):
            return False
        return all(d in s for d, s in zip(number, self.positions, strict=False))

    def regex(self) -> str:
        """The pattern as an anchored POSIX extended regex (Kamailio's ``=~``)."""
        sets = ["".join(sorted(s)) for s in self.positions]
        body = "".join(d if len(d) == 1 else f"[{d}]" for d in sets)
        return f"^{body}{'[0-9]+' if self.open_tail else ''}$"

    def overlaps(self, other: Pattern) -> bool:
        """Whether some number matches both patterns."""
        short, long_ = sorted((self, other), key=lambda p: len(p.positions))
        pairs = zip(short.positions, long_.positions, strict=False)
        if any(not (a & b) for a, b in pairs):
            return False
        if len(short.positions) == len(long_.positions):
            return short.open_tail == long_.open_tail
        return short.open_tail

    def covers(self, other: Pattern) -> bool:
        """Whether every number matching ``other`` matches this pattern too."""
        if len(other.positions) < len(self.positions):
            return False
        if not self.open_tail and (other.open_tail or len(other.positions) > len(self.positions)):
            return False
        if self.open_tail and len(other.positions) == len(self.positions) and not other.open_tail:
            return False
        return all(b <= a for a, b in zip(self.positions, other.positions, strict=False))


def compile_pattern(text: str) -> Pattern:
    """Compile ``text`` or raise ValueError saying what is wrong."""
    open_tail = text.endswith(".")
    body = text[:-1] if open_tail else text
    positions: list[frozenset[str]] = []
    for token in re.findall(r"\[[^\]]*\]|.", body):
        if token.isdigit():
            positions.append(frozenset(token))
        elif token in _CLASSES:
            positions.append(_CLASSES[token])
        elif token.startswith("[") and re.fullmatch(r"\[(\d(-\d)?)+\]", token):
            digits: set[str] = set()
            for lo, hi in re.findall(r"(\d)(?:-(\d))?", token[1:-1]):
                digits.update(str(d) for d in range(int(lo), int(hi or lo) + 1))
            positions.append(frozenset(digits))
        else:
            raise ValueError(f"pattern {text!r}: unexpected {token!r}")
    if not positions:
        raise ValueError(f"pattern {text!r} matches nothing")
    return Pattern(text, tuple(positions), open_tail)


@dataclass(frozen=True)
class Hop:
    """One place Kamailio tries, in order, for an ``action == "route"`` decision.

    ``site``: another site's PBX (``headers`` carry the signed inter-site headers);
    ``trunk``: a local trunk. ``from_user`` and ``display`` go into From; ``timer_ms``
    is how long to wait for any reply before trying the next hop (0: the default).
    """

    kind: str
    uri: str
    from_user: str
    label: str
    display: str = ""
    headers: str = ""
    timer_ms: int = 0


@dataclass(frozen=True)
class Decision:
    """What Kamailio should do with a call.

    ``caller_name``: a quoted display name Kamailio puts into From (a hotel guest's name);
    only for a decision that stays inside the site (extension, group, media).
    ``refusal``: set on a compliance refusal, the sentence Kamailio sends in a ``Reason``
    header (the reason phrase is ``reason``, the rule); it makes the CDR ``refused``.
    """

    action: str
    targets: tuple[str, ...] = ()
    serial: bool = False
    ring_s: int = 0
    uri: str = ""
    caller_id: str = ""
    route: str = ""
    trunk: str = ""
    code: int = 0
    reason: str = ""
    recording: str | None = None
    forward: tuple[str, str, str] = ("", "", "")
    trunk_auth: bool = False
    hops: tuple[Hop, ...] = ()
    peer_site: str = ""
    caller_ext: str = ""
    caller_name: str = ""
    conversation: str = ""
    refusal: str = ""

    def wire(self) -> dict[str, object]:
        """The JSON object Kamailio reads (lists as one string, ``,`` or ``|`` separated)."""
        return {
            "action": self.action,
            "members": ",".join(self.targets),
            "count": len(self.targets),
            "serial": 1 if self.serial else 0,
            "ring_ms": self.ring_s * 1000,
            "uri": self.uri,
            "caller_id": self.caller_id,
            "route": self.route,
            "trunk": self.trunk,
            "code": self.code,
            "reason": self.reason,
            "record": "yes" if self.recording == "always" else "no",
            "recording": self.recording or "never",
            "fwd_busy": self.forward[0],
            "fwd_no_answer": self.forward[1],
            "fwd_unavailable": self.forward[2],
            "trunk_auth": 1 if self.trunk_auth else 0,
            "hops": len(self.hops),
            "hop_uri": "|".join(h.uri for h in self.hops),
            "hop_from": "|".join(h.from_user for h in self.hops),
            "hop_display": "|".join(h.display for h in self.hops),
            "hop_hdrs": "|".join(h.headers for h in self.hops),
            "hop_fr": "|".join(str(h.timer_ms) for h in self.hops),
            "hop_label": "|".join(h.label for h in self.hops),
            "peer_site": self.peer_site,
            "caller_ext": self.caller_ext,
            "caller_name": self.caller_name,
            "conversation": self.conversation,
            "refusal": self.refusal.translate(_HEADER_UNSAFE).strip(),
        }


class Router(Protocol):
    """Routes numbers the local dial plan does not know (other sites, the routing table)."""

    def outbound(self, plan: DialPlan, caller: str, dialled: str, call_id: str) -> Decision | None:
        """A decision, or None to let the dial plan answer ``404``."""


class DialPlan:
    """A validated dial plan over the site's extensions."""

    def __init__(
        self,
        settings: DialPlanSettings,
        extensions: Iterable[str],
        media: MediaSettings | None = None,
        gsm: GsmSettings | None = None,
        router: Router | None = None,
        flows: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        self.settings = settings
        self.router = router
        self.flows = flows
        self.extensions = frozenset(extensions)
        self.media = media or MediaSettings(workers=0)
        self.gsm = gsm or GsmSettings()
        self.gsm_groups = {g.name: g for g in self.gsm.groups}
        self.groups = {g.number: g for g in settings.ring_groups}
        self.trunks = {t.name: t for t in settings.trunks}
        self.inbound = {r.did: r for r in settings.inbound}
        self.routes: list[tuple[OutboundRoute, Pattern]] = []
        problems = self._compile()
        problems += self._validate()
        if problems:
            raise DialPlanError(problems)

    def _compile(self) -> list[str]:
        problems = []
        for route in self.settings.outbound:
            try:
                self.routes.append((route, compile_pattern(route.pattern)))
            except ValueError as err:
                problems.append(f"outbound route {route.name!r}: {err}")
        return problems

    def _validate(self) -> list[str]:
        s = self.settings
        owned = set(s.owned_numbers)
        problems = [f"ring group {n}: same number as an extension" for n in self.groups
                    if n in self.extensions]  # fmt: skip
        for group in s.ring_groups:
            problems += [f"ring group {group.number}: member {m} is not an extension"
                         for m in group.members if m not in self.extensions]  # fmt: skip
        for route, pattern in self.routes:
            if route.trunk in self.gsm_groups:
                if route.caller_id:
                    problems.append(f"outbound route {route.name!r}: a GSM route presents the "
                                    "SIM's own number; leave caller_id empty")  # fmt: skip
            else:
                if route.trunk not in self.trunks:
                    problems.append(f"outbound route {route.name!r}: unknown trunk {route.trunk!r}")
                if route.caller_id not in owned:
                    problems.append(
                        f"outbound route {route.name!r}: caller ID {route.caller_id} "
                        "is not one of owned_numbers"
                    )
            local = sorted(n for n in self.extensions | set(self.groups) if pattern.matches(n))
            if local:
                problems.append(
                    f"outbound route {route.name!r}: pattern {route.pattern} overlaps local "
                    f"numbers {', '.join(local)}"
                )
        problems += self._overlaps()
        for r in s.inbound:
            if r.did not in owned:
                problems.append(f"inbound route {r.did}: not one of owned_numbers")
            problems += self._unreachable(f"inbound route {r.did}", r.target)
        for g in self.gsm.inbound:
            problems += self._unreachable(f"gsm inbound {g.iccid}", g.target)
        if self.gsm.default_inbound is not None:
            problems += self._unreachable("gsm default_inbound", self.gsm.default_inbound)
        problems += [f"gsm group {g}: same name as a SIP trunk" for g in self.gsm_groups
                     if g in self.trunks]  # fmt: skip
        problems += [f"class_of_service: {e} is not an extension" for e in s.class_of_service
                     if e not in self.extensions]  # fmt: skip
        problems += [f"recording_by_extension: {e} is not an extension"
                     for e in s.recording_by_extension if e not in self.extensions]  # fmt: skip
        for ext, fwd in s.forward.items():
            if ext not in self.extensions:
                problems.append(f"forward: {ext} is not an extension")
            for when in ("busy", "no_answer", "unavailable"):
                target = getattr(fwd, when)
                if target == ext:
                    problems.append(f"forward {ext}.{when}: forwards to itself")
                elif target is not None:
                    problems += self._unreachable(f"forward {ext}.{when}", target)
        for name, flow in self.media.ivr.items():
            for digit, target in flow.options.items():
                problems += self._unreachable(f"ivr {name} option {digit}", target)
            if flow.default is not None:
                problems += self._unreachable(f"ivr {name} default", flow.default)
        codes = s.feature_codes
        if codes.room.startswith(codes.echo) or codes.echo.startswith(codes.room):
            problems.append(f"feature codes {codes.echo} and {codes.room} overlap")
        return problems

    def _unreachable(self, where: str, target: str) -> list[str]:
        if self.target(target) is None:
            return [f"{where}: target {target} is unreachable (not an extension, ring group, "
                    "announce:<prompt> or ivr:<flow> with a media worker)"]  # fmt: skip
        return []

    def target(self, target: str) -> Decision | None:
        """The decision for a configured target, or None when it does not resolve."""
        kind, _, name = target.partition(":")
        if kind in ("announce", "ivr") and name:
            return self._media(f"{kind}-{name}")
        return self.local(target)

    def _media(self, user: str) -> Decision | None:
        if self.media.workers == 0:
            return None
        kind, _, name = user.partition("-")
        flows = set(self.media.ivr) | set(self.flows())
        known: set[str] | None = {"announce": set(self.media.prompts), "ivr": flows}.get(kind)
        if known is not None and name not in known:
            return None
        if known is None and user != "echo" and not (kind == "room" and name.isdigit()):
            return None
        return Decision("media", uri=user, route=f"media:{user}", recording="never")

    def _overlaps(self) -> list[str]:
        problems = []
        for i, (first, a) in enumerate(self.routes):
            for second, b in self.routes[i + 1 :]:
                if a.covers(b):
                    problems.append(
                        f"outbound route {second.name!r} is unreachable: every number it "
                        f"matches ({b.text}) is taken by {first.name!r} ({a.text})"
                    )
                elif a.overlaps(b):
                    problems.append(
                        f"outbound routes {first.name!r} ({a.text}) and {second.name!r} "
                        f"({b.text}) overlap"
                    )
        return problems

    def cos(self, extension: str) -> CosLevel:
        """The class of service of ``extension``."""
        return self.settings.class_of_service.get(extension, self.settings.default_cos)

    def recording(self, caller: str, callee: str) -> str:
        """The recording policy for a call between two parties (numbers or extensions)."""
        by_ext = self.settings.recording_by_extension
        return by_ext.get(caller) or by_ext.get(callee) or self.settings.recording

    def decide(
        self,
        caller: str,
        dialled: str,
        from_trunk: bool = False,
        to: str = "",
        call_id: str = "",
    ) -> Decision:
        """Route a call from ``caller`` (an extension, or a trunk when ``from_trunk``).

        A trunk we register with may send calls to our Contact (the trunk's name) with
        the DID in the To header: ``to`` is then the number dialled. Numbers that are no
        local extension, group, media service or outbound route go to the router (other
        sites' extensions, the routing table's rules) when there is one.
        """
        if from_trunk:
            return self._inbound(to if dialled in self.trunks and to else dialled)
        codes = self.settings.feature_codes
        if dialled == codes.echo:
            dialled = "echo"
        elif dialled.startswith(codes.room) and dialled[len(codes.room) :].isdigit():
            dialled = "room-" + dialled[len(codes.room) :]
        if not dialled[:1].isdigit() and not dialled.startswith("+"):
            media = self._media(dialled)
            return media or Decision("reject", code=404, reason="unknown-service")
        local = self.local(dialled)
        if local is not None:
            return replace(local, recording=self.recording(caller, dialled))
        for route, pattern in self.routes:
            if pattern.matches(dialled):
                return self._outbound(caller, dialled, route)
        if self.router is not None:
            routed = self.router.outbound(self, caller, dialled, call_id)
            if routed is not None:
                return routed
        local_lengths = {len(n) for n in self.extensions | set(self.groups)}
        unknown = "unknown-extension" if len(dialled) in local_lengths else "no-route"
        return Decision("reject", code=404, reason=unknown)

    def local(self, number: str) -> Decision | None:
        """The decision for a local extension or ring group, else None."""
        if number in self.extensions:
            fwd = self.settings.forward.get(number)
            forward = ("", "", "")
            if fwd is not None:
                forward = (
                    _dialable(fwd.busy),
                    _dialable(fwd.no_answer),
                    _dialable(fwd.unavailable),
                )
            return Decision("extension", (number,), route="extension", forward=forward)
        group = self.groups.get(number)
        if group is None:
            return None
        serial = group.strategy == "sequential"
        return Decision("group", group.members, serial, group.ring_s, route=f"group:{number}")

    def _inbound(self, did: str) -> Decision:
        route = self.inbound.get(did)
        if route is None:
            return Decision("reject", code=404, reason="no-inbound-route")
        target = self.target(route.target)
        assert target is not None
        recording = route.recording or self.recording("", route.target)
        if target.action == "media":
            recording = "never"
        return replace(target, route=f"inbound:{did}", recording=recording)

    def for_site(self, caller: str, dialled: str) -> Decision | None:
        """The outbound route of a call the site places on its own behalf from ``caller``,
        no extension here (a callback to an outside caller answered by an agent of
        another site): the site's default class of service and the route's caller ID,
        never the caller's number; None when no outbound route matches."""
        for route, pattern in self.routes:
            if pattern.matches(dialled):
                return self._route(caller, self.settings.default_cos, dialled, route)
        return None

    def _outbound(self, caller: str, dialled: str, route: OutboundRoute) -> Decision:
        if caller not in self.extensions:
            return Decision("reject", code=403, reason="not-an-extension")
        return self._route(caller, self.cos(caller), dialled, route)

    def _route(self, caller: str, cos: CosLevel, dialled: str, route: OutboundRoute) -> Decision:
        if COS_RANK[cos] < COS_RANK[route.cos]:
            return Decision("reject", code=403, reason="class-of-service", route=route.name)
        number = route.prepend + dialled[route.strip :]
        if route.trunk in self.gsm_groups:
            return Decision("gsm", uri=number, route=route.name, trunk=route.trunk,
                            recording=self.recording(caller, number))  # fmt: skip
        return self.trunk_decision(route, number, route.recording or self.recording(caller, number))

    def trunk_decision(self, route: OutboundRoute, number: str, recording: str) -> Decision:
        """The decision that sends ``number`` out through ``route``'s SIP trunk."""
        trunk = self.trunks[route.trunk]
        return Decision(
            "trunk",
            uri=f"sip:{number}@{trunk.host}:{trunk.port}",
            caller_id=route.caller_id,
            route=route.name,
            trunk=trunk.name,
            recording=recording,
            trunk_auth=trunk.auth is not None,
        )


def _dialable(target: str | None) -> str:
    """A forward target as the user part Kamailio asks the dial plan about again."""
    if not target:
        return ""
    kind, sep, name = target.partition(":")
    return f"{kind}-{name}" if sep else target
