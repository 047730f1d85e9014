"""Whole-directory checks that single fields cannot express.

Every problem names the entries at fault. ``validate`` collects them all and raises one
DirectoryError whose ``error_id`` is the first problem's; ``problems`` holds the rest.

Exceptions::

    DirectoryError(error_id, message, entries, problems)
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aggregator.directory.model import Directory, Rule, Site


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the directory, naming its entries."""

    error_id: str
    message: str
    entries: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"error_id": self.error_id, "message": self.message, "entries": list(self.entries)}


@dataclass
class DirectoryError(Exception):
    """The directory is refused; nothing was written."""

    error_id: str
    message: str
    entries: tuple[str, ...]
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.error_id}: {self.message}"


def validate(directory: Directory) -> None:
    """Raise DirectoryError listing every problem, or return when the directory is sound."""
    problems = [
        *_duplicates(directory),
        *_references(directory),
        *_overlaps(directory),
        *_site_codes(directory),
        *_caller_ids(directory),
        *_loops(directory),
    ]
    if problems:
        first = problems[0]
        raise DirectoryError(first.error_id, first.message, first.entries, problems)


def _duplicates(directory: Directory) -> Iterator[Problem]:
    for kind, ids in (
        ("site", [s.id for s in directory.sites]),
        ("trunk", [t.id for t in directory.trunks]),
        ("rule", [r.id for r in directory.rules]),
    ):
        for entry, count in Counter(ids).items():
            if count > 1:
                yield Problem("duplicate-id", f"{kind} {entry!r} appears {count} times", (entry,))


def _references(directory: Directory) -> Iterator[Problem]:
    sites = {s.id for s in directory.sites}
    trunks = {t.id for t in directory.trunks}
    for trunk in directory.trunks:
        if trunk.site not in sites:
            yield _unknown_site(f"trunk {trunk.id}", trunk.site)
    for rule in directory.rules:
        for site in rule.sites:
            if site not in sites:
                yield _unknown_site(f"rule {rule.id}", site)
        for target in rule.targets:
            if target.site is not None and target.site not in sites:
                yield _unknown_site(f"rule {rule.id}", target.site)
            if target.trunk is not None and target.trunk not in trunks:
                yield Problem(
                    "unknown-trunk",
                    f"rule {rule.id} targets trunk {target.trunk!r}, which is not in the directory",
                    (f"rule {rule.id}", f"trunk {target.trunk}"),
                )


def _unknown_site(entry: str, site: str) -> Problem:
    return Problem(
        "unknown-site",
        f"{entry} names site {site!r}, which is not in the directory",
        (entry, f"site {site}"),
    )


def _overlaps(directory: Directory) -> Iterator[Problem]:
    groups: list[list[Site]] = (
        [list(directory.sites)] if directory.plan.flat else [[s] for s in directory.sites]
    )
    for group in groups:
        spans = sorted(
            (len(r.first), int(r.first), int(r.last), f"site {s.id} {r.label()}")
            for s in group
            for r in s.all_ranges()
        )
        widest: tuple[int, int, int, str] | None = None
        for span in spans:
            if widest is not None and widest[0] == span[0] and span[1] <= widest[2]:
                yield Problem(
                    "overlapping-extensions",
                    f"{widest[3]} overlaps {span[3]}",
                    (widest[3], span[3]),
                )
            if widest is None or widest[0] != span[0] or span[2] > widest[2]:
                widest = span
    yield from _prefix_collisions(directory)


def _prefix_collisions(directory: Directory) -> Iterator[Problem]:
    prefix = directory.plan.site_prefix
    if not prefix:
        return
    for site in directory.sites:
        for r in site.all_ranges():
            pad = len(r.first) - len(prefix)
            if pad > 0 and r.first <= prefix + "9" * pad and r.last >= prefix + "0" * pad:
                yield Problem(
                    "prefix-collision",
                    f"site {site.id} extensions {r.label()} start with the site prefix {prefix}",
                    (f"site {site.id} {r.label()}",),
                )


def _site_codes(directory: Directory) -> Iterator[Problem]:
    coded = sorted((s.code, s.id) for s in directory.sites if s.code is not None)
    for (code_a, site_a), (code_b, site_b) in itertools.pairwise(coded):
        if code_b.startswith(code_a):
            yield Problem(
                "ambiguous-site-code",
                f"site code {code_a} of {site_a} is a prefix of code {code_b} of {site_b}",
                (f"site {site_a}", f"site {site_b}"),
            )
    if directory.plan.site_prefix:
        for site in directory.sites:
            if site.code is None:
                yield Problem(
                    "missing-site-code",
                    f"site {site.id} needs a code: the plan dials sites by prefix",
                    (f"site {site.id}",),
                )


def _caller_ids(directory: Directory) -> Iterator[Problem]:
    owned = {t.id: set(t.numbers) for t in directory.trunks}
    for trunk in directory.trunks:
        if trunk.caller_id is not None and trunk.caller_id not in owned[trunk.id]:
            yield _not_owned(f"trunk {trunk.id}", trunk.id, trunk.caller_id)
    for rule in directory.rules:
        for target in rule.targets:
            numbers = owned.get(target.trunk or "")
            if target.caller_id is not None and numbers and target.caller_id not in numbers:
                yield _not_owned(f"rule {rule.id}", target.trunk or "", target.caller_id)


def _not_owned(entry: str, trunk: str, number: str) -> Problem:
    return Problem(
        "caller-id-not-owned",
        f"{entry} presents {number}, which trunk {trunk} does not own",
        (entry, f"trunk {trunk}", number),
    )


def _loops(directory: Directory) -> Iterator[Problem]:
    """A call handed from site to site must never come back to a site it passed."""
    known = {s.id for s in directory.sites}
    rules_at = {s: [r for r in directory.rules if not r.sites or s in r.sites] for s in known}
    safe: set[tuple[str, str]] = set()
    reported: set[frozenset[str]] = set()
    for origin in sorted(known):
        for loop in _walk(origin, "", [origin], [], rules_at, safe):
            sites, rules = loop
            key = frozenset(rules)
            if key not in reported:
                reported.add(key)
                yield Problem(
                    "routing-loop",
                    f"rules {', '.join(rules)} send calls around {' -> '.join(sites)}",
                    tuple(f"rule {r}" for r in rules),
                )


def _walk(
    site: str,
    prefix: str,
    path: list[str],
    via: list[str],
    rules_at: dict[str, list[Rule]],
    safe: set[tuple[str, str]],
) -> Iterator[tuple[list[str], list[str]]]:
    if (site, prefix) in safe:
        return
    found = False
    for rule in rules_at.get(site, []):
        if not (rule.prefix.startswith(prefix) or prefix.startswith(rule.prefix)):
            continue
        longer = max(prefix, rule.prefix, key=len)
        for target in rule.targets:
            if target.site is None or target.site == site or target.site not in rules_at:
                continue
            if target.site in path:
                found = True
                start = path.index(target.site)
                yield [*path[start:], target.site], [*via[start:], rule.id]
                continue
            for loop in _walk(
                target.site, longer, [*path, target.site], [*via, rule.id], rules_at, safe
            ):
                found = True
                yield loop
    if not found:
        safe.add((site, prefix))
