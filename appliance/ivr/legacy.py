"""``pbx.media.ivr`` menus (one prompt, one digit, a target per digit) expressed as flows."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from appliance.pbx.settings import IvrSettings


def menu_flow(menu: IvrSettings, ring_groups: Collection[str]) -> dict[str, Any]:
    """The flow document of a one-level menu: digit -> target, default after the retries."""
    node: dict[str, Any] = {"type": "menu", "prompt": menu.prompt, "options": {},
                            "timeout_s": menu.timeout_s, "retries": menu.retries}  # fmt: skip
    nodes: dict[str, Any] = {"menu": node}
    for digit, target in sorted(menu.options.items()):
        node["options"][digit] = _target(nodes, f"option-{digit}", target, ring_groups)
    if menu.default is not None:
        node["timeout"] = node["invalid"] = _target(nodes, "default", menu.default, ring_groups)
    return {"start": "menu", "nodes": nodes}


def _target(nodes: dict[str, Any], name: str, target: str, ring_groups: Collection[str]) -> str:
    kind, _, arg = target.partition(":")
    if kind == "ivr":
        nodes[name] = {"type": "flow", "flow": arg}
    elif kind == "announce":
        nodes[name] = {"type": "play", "prompt": arg, "next": f"{name}-end"}
        nodes[f"{name}-end"] = {"type": "hangup"}
    else:
        kind = "ring-group" if target in ring_groups else "extension"
        nodes[name] = {"type": kind, "number": target}
    return name
