"""Console pages of the routing directory: every role reads, admins edit.

An edit is checked twice, as the API checks it: the entry alone (pydantic, each problem
shown next to its field) and then the whole directory (``DirectoryError``, each problem
shown above the form, naming the entries at fault).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from aggregator.console import forms
from aggregator.console.sessions import Session
from aggregator.console.web import PREFIX, Console, form_text
from aggregator.directory.model import Directory
from aggregator.directory.store import DirectoryStore
from aggregator.directory.validate import DirectoryError
from drivers.web.pages import PageError

NEW = "+new"


def build_directory_pages(console: Console, store: DirectoryStore) -> APIRouter:
    """The directory overview, entry forms and their writes."""
    router = APIRouter(prefix=f"{PREFIX}/directory", include_in_schema=False)
    viewer = console.needs("viewer")
    admin = console.changes("admin")

    @router.get("")
    def directory_page(request: Request, session: Annotated[Session, viewer]) -> Response:
        directory, revision = store.read()
        listed = {kind: forms.entries(directory, kind) for kind in forms.DIRECTORY_FORMS}
        return console.render(
            request,
            session,
            "directory.html",
            page="directory",
            revision=revision,
            plan=directory.plan,
            entries=listed,
        )

    @router.get("/plan")
    def plan_form(request: Request, session: Annotated[Session, viewer]) -> Response:
        directory, _ = store.read()
        shown = forms.as_text(forms.PLAN_FORM, directory.plan.model_dump())
        return _form(console, request, session, "plan", "", forms.PLAN_FORM, shown, {})

    @router.post("/plan")
    async def save_plan(request: Request, session: Annotated[Session, admin]) -> Response:
        submitted = await form_text(request)
        try:
            plan = forms.plan(forms.parse(forms.PLAN_FORM, submitted))
        except ValidationError as err:
            errors = forms.field_errors(err, forms.PLAN_FORM)
            return _form(console, request, session, "plan", "", forms.PLAN_FORM, submitted, errors)
        edit = _with_plan(plan)
        shown = ("plan", "", forms.PLAN_FORM, submitted)
        return _save(console, request, session, store, edit, shown)

    @router.get("/{kind}/{entry_id}")
    def entry_form(
        kind: str, entry_id: str, request: Request, session: Annotated[Session, viewer]
    ) -> Response:
        fields = _fields(kind)
        directory, _ = store.read()
        found = {} if entry_id == NEW else _find(forms.entries(directory, kind), kind, entry_id)
        shown = forms.as_text(fields, found)
        return _form(console, request, session, kind, entry_id, fields, shown, {})

    @router.post("/{kind}/{entry_id}")
    async def save_entry(
        kind: str, entry_id: str, request: Request, session: Annotated[Session, admin]
    ) -> Response:
        fields = _fields(kind)
        submitted = await form_text(request)
        try:
            entry = forms.directory_entry(kind, _keep_unshown(store, kind, entry_id, submitted))
        except ValidationError as err:
            errors = forms.field_errors(err, fields)
            return _form(console, request, session, kind, entry_id, fields, submitted, errors)
        edit = _replacing(kind, entry_id, entry)
        return _save(console, request, session, store, edit, (kind, entry_id, fields, submitted))

    @router.post("/{kind}/{entry_id}/delete")
    def delete_entry(
        kind: str, entry_id: str, request: Request, session: Annotated[Session, admin]
    ) -> Response:
        fields = _fields(kind)

        def remove(directory: Directory) -> Directory:
            kept = tuple(e for e in getattr(directory, kind) if e.id != entry_id)
            return directory.model_copy(update={kind: kept})

        directory, _ = store.read()
        shown = forms.as_text(fields, _find(forms.entries(directory, kind), kind, entry_id))
        return _save(console, request, session, store, remove, (kind, entry_id, fields, shown))

    return router


def _fields(kind: str) -> tuple[forms.Field, ...]:
    if kind not in forms.DIRECTORY_FORMS:
        raise PageError(404, "unknown-kind", f"the directory has no {kind!r}")
    return forms.DIRECTORY_FORMS[kind]


def _find(entries: Sequence[dict[str, Any]], kind: str, entry_id: str) -> dict[str, Any]:
    for entry in entries:
        if entry["id"] == entry_id:
            return entry
    raise PageError(404, "unknown-entry", f"no {kind.removesuffix('s')} {entry_id!r}")


def _keep_unshown(
    store: DirectoryStore, kind: str, entry_id: str, submitted: Mapping[str, str]
) -> dict[str, Any]:
    """The submitted values plus what the form does not edit (a rule's time windows)."""
    values = forms.parse(forms.DIRECTORY_FORMS[kind], submitted)
    if kind == "rules" and entry_id != NEW:
        directory, _ = store.read()
        old = next((e for e in forms.entries(directory, kind) if e["id"] == entry_id), {})
        values["windows"] = old.get("windows", [])
    return values


def _with_plan(plan: Any) -> Callable[[Directory], Directory]:
    def edit(directory: Directory) -> Directory:
        return directory.model_copy(update={"plan": plan})

    return edit


def _replacing(kind: str, entry_id: str, entry: Any) -> Callable[[Directory], Directory]:
    def edit(directory: Directory) -> Directory:
        kept = [e for e in getattr(directory, kind) if e.id not in (entry_id, entry.id)]
        return directory.model_copy(update={kind: (*kept, entry)})

    return edit


def _save(
    console: Console,
    request: Request,
    session: Session,
    store: DirectoryStore,
    edit: Callable[[Directory], Directory],
    shown: tuple[str, str, Sequence[forms.Field], Mapping[str, str]],
) -> Response:
    try:
        store.change(edit)
    except DirectoryError as err:
        problems = [f"{p.message} ({', '.join(p.entries)})" for p in err.problems]
        return _form(console, request, session, *shown, {forms.FORM: problems})
    return RedirectResponse(f"{PREFIX}/directory", status_code=303)


def _form(
    console: Console,
    request: Request,
    session: Session,
    kind: str,
    entry_id: str,
    fields: Sequence[forms.Field],
    values: Mapping[str, str],
    errors: dict[str, list[str]],
) -> Response:
    return console.render(
        request,
        session,
        "entry.html",
        422 if errors else 200,
        page="directory",
        kind=kind,
        entry_id=entry_id,
        is_new=entry_id == NEW,
        fields=fields,
        values=values,
        errors=errors,
    )
