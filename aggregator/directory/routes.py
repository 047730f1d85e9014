"""HQ API for the directory: admins write, every role reads.

``PUT /api/v1/directory`` replaces the whole directory; the per-entry routes change one
site, trunk or rule. Each write is validated as a whole directory and answered 422 with
the first problem's ``error_id`` and every problem in ``details.problems``.
"""

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter

from aggregator.api.auth import Principal, hq_access
from aggregator.api.errors import ApiError
from aggregator.directory.model import Directory, NumberingPlan, Rule, Site, Trunk
from aggregator.directory.store import DirectoryStore, Published
from aggregator.directory.validate import DirectoryError
from aggregator.settings import AggregatorSettings

Entry = Site | Trunk | Rule
KINDS = ("sites", "trunks", "rules")


def build_directory_router(
    settings: AggregatorSettings, engine: Callable[[], sa.Engine]
) -> APIRouter:
    """The /api/v1/directory routes."""
    router = APIRouter(prefix="/api/v1/directory", tags=["directory"])
    access = hq_access(settings.api.tokens)
    who = Annotated[Principal, access.needs("viewer")]
    admin = Annotated[Principal, access.needs("admin")]
    store = DirectoryStore(engine, settings.routing.keep_updates)

    @router.get("", summary="The whole directory and its revision")
    def get_directory(principal: who) -> dict[str, Any]:
        directory, revision = store.read()
        return {"revision": revision, "directory": directory.model_dump(mode="json")}

    @router.put("", summary="Replace the whole directory (validated as one)")
    def put_directory(directory: Directory, principal: admin) -> dict[str, Any]:
        return _published(_write(store, lambda _: directory))

    @router.put("/plan", summary="Change the numbering plan")
    def put_plan(plan: NumberingPlan, principal: admin) -> dict[str, Any]:
        return _published(_write(store, lambda d: d.model_copy(update={"plan": plan})))

    @router.get("/snapshots", summary="Routing table version per site: at HQ, applied, refused")
    def get_snapshots(principal: who) -> dict[str, Any]:
        states = store.snapshot_states()
        return {"snapshots": [s for s in states if principal.may_see(s["site_id"])]}

    @router.put("/sites/{entry_id}", summary="Create or replace a site")
    def put_site(entry_id: str, entry: Site, principal: admin) -> dict[str, Any]:
        return _put(store, "sites", entry_id, entry)

    @router.put("/trunks/{entry_id}", summary="Create or replace a trunk")
    def put_trunk(entry_id: str, entry: Trunk, principal: admin) -> dict[str, Any]:
        return _put(store, "trunks", entry_id, entry)

    @router.put("/rules/{entry_id}", summary="Create or replace a rule")
    def put_rule(entry_id: str, entry: Rule, principal: admin) -> dict[str, Any]:
        return _put(store, "rules", entry_id, entry)

    for kind in KINDS:
        _read_and_delete_routes(router, store, access.needs("viewer"), access.needs("admin"), kind)
    return router


def _put(store: DirectoryStore, kind: str, entry_id: str, entry: Entry) -> dict[str, Any]:
    if entry.id != entry_id:
        raise ApiError(422, "id-mismatch", f"body id {entry.id!r} differs from {entry_id!r}")
    return _published(_write(store, lambda d: _replace(d, kind, entry)))


def _read_and_delete_routes(
    router: APIRouter, store: DirectoryStore, reader: Any, admin: Any, kind: str
) -> None:
    def list_entries(principal: Principal = reader) -> dict[str, Any]:
        directory, revision = store.read()
        entries = [e.model_dump(mode="json") for e in _of(directory, kind)]
        return {"revision": revision, kind: entries}

    def get_entry(entry_id: str, principal: Principal = reader) -> dict[str, Any]:
        directory, _ = store.read()
        return _find(_of(directory, kind), kind, entry_id).model_dump(mode="json")

    def delete_entry(entry_id: str, principal: Principal = admin) -> dict[str, Any]:

        def remove(directory: Directory) -> Directory:
            _find(_of(directory, kind), kind, entry_id)
            kept = tuple(e for e in _of(directory, kind) if e.id != entry_id)
            return directory.model_copy(update={kind: kept})

        return _published(_write(store, remove))

    one = kind.removesuffix("s")
    path = f"/{kind}/{{entry_id}}"
    router.add_api_route(f"/{kind}", list_entries, methods=["GET"], summary=f"List {kind}")
    router.add_api_route(path, get_entry, methods=["GET"], summary=f"One {one}")
    router.add_api_route(path, delete_entry, methods=["DELETE"], summary=f"Remove a {one}")


def _of(directory: Directory, kind: str) -> Sequence[Entry]:
    entries: Sequence[Entry] = getattr(directory, kind)
    return entries


def _find(entries: Sequence[Entry], kind: str, entry_id: str) -> Entry:
    for entry in entries:
        if entry.id == entry_id:
            return entry
    raise ApiError(
        404, "unknown-entry", f"no {kind.removesuffix('s')} {entry_id!r} in the directory"
    )


def _replace(directory: Directory, kind: str, entry: Entry) -> Directory:
    entries = list(_of(directory, kind))
    at = next((i for i, e in enumerate(entries) if e.id == entry.id), None)
    if at is None:
        entries.append(entry)
    else:
        entries[at] = entry
    return directory.model_copy(update={kind: tuple(entries)})


def _write(store: DirectoryStore, edit: Callable[[Directory], Directory]) -> Published:
    try:
        return store.change(edit)
    except DirectoryError as err:
        details = {"entries": list(err.entries), "problems": [p.as_dict() for p in err.problems]}
        raise ApiError(422, err.error_id, err.message, details) from None


def _published(published: Published) -> dict[str, Any]:
    return {"revision": published.revision, "published": published.versions}
