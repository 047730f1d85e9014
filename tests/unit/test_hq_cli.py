"""`callmesh hq` without a server: where HQ and its token come from, output, HQ's errors."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from aggregator.hq_cli.client import HqClient
from aggregator.hq_cli.directory_fields import assignments, changed_entry, new_entry
from aggregator.hq_cli.errors import HqCliError
from aggregator.hq_cli.output import Progress, flatten, table, write_csv, write_xlsx
from aggregator.hq_cli.paths import segment
from aggregator.hq_cli.target import DEFAULT_URL, HqTarget, resolve

pytestmark = pytest.mark.unit
HOSTILE = {"caller_name": '=HYPERLINK("http://x")', "number": "+4930100", "n": 3}


def private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_the_environment_overrides_the_file_and_the_command_line_overrides_both(
    tmp_path: Path,
) -> None:
    config = private(tmp_path / "hq.yaml", "url: http://file:1\ntoken: from-file\n")
    env = {"CALLMESH_HQ_URL": "http://env:2", "CALLMESH_HQ_TOKEN": "from-env"}
    assert resolve(None, config, {}, tmp_path) == HqTarget("http://file:1", "from-file", 30.0)
    assert resolve(None, config, env, tmp_path) == HqTarget("http://env:2", "from-env", 30.0)
    assert resolve("http://cli:3/", config, env, tmp_path).url == "http://cli:3"


def test_the_default_file_and_a_token_file_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / ".config" / "callmesh"
    folder.mkdir(parents=True)
    private(folder / "token", "secret-token\n")
    (folder / "hq.yaml").write_text("token_file: token\ntimeout_s: 5\n")
    assert resolve(None, None, {}, tmp_path) == HqTarget(DEFAULT_URL, "secret-token", 5.0)


@pytest.mark.parametrize(
    ("text", "error_id", "words"),
    [
        ("url: ftp://x\n", "config-invalid", "url"),
        ("tokn: x\n", "config-invalid", "tokn"),
        ("- a list\n", "config-invalid", "mapping"),
        ("url: [\n", "config-invalid", "not YAML"),
        ("url: http://x\n", "no-token", "no HQ API token"),
    ],
)
def test_a_bad_config_file_names_the_file_and_the_key(
    tmp_path: Path, text: str, error_id: str, words: str
) -> None:
    config = private(tmp_path / "hq.yaml", text)
    with pytest.raises(HqCliError) as caught:
        resolve(None, config, {}, tmp_path)
    assert (caught.value.error_id, caught.value.exit_code) == (error_id, 2)
    assert words in caught.value.message
    if error_id == "config-invalid":
        assert str(config) in caught.value.message


def test_a_token_others_may_read_is_refused(tmp_path: Path) -> None:
    config = private(tmp_path / "hq.yaml", "token: t\n")
    config.chmod(0o640)
    with pytest.raises(HqCliError) as caught:
        resolve(None, config, {}, tmp_path)
    assert caught.value.error_id == "secret-file-too-open"
    assert caught.value.hint == f"chmod 600 {config}"


def test_ids_cannot_walk_to_another_route() -> None:
    assert segment("../dnc?x=1") == "..%2Fdnc%3Fx%3D1"


def test_records_flatten_to_dotted_columns_and_tables_cut_long_cells() -> None:
    row = {"id": "a", "recording": {"state": "available"}, "alarms": ["x"], "note": "y" * 60}
    assert flatten(row) == {
        "id": "a",
        "recording.state": "available",
        "alarms": '["x"]',
        "note": "y" * 60,
    }
    lines = table([row], ["id", "recording.state", "note"]).splitlines()
    assert lines[0].split() == ["id", "recording.state", "note"]
    assert lines[2].endswith("y" * 39 + "…")
    assert table([], ["id"]) == "(none)"


def test_csv_cells_that_look_like_formulas_are_neutralised() -> None:
    sink = io.StringIO()
    write_csv([HOSTILE], sink)
    row = next(csv.DictReader(io.StringIO(sink.getvalue())))
    assert row == {"caller_name": '\'=HYPERLINK("http://x")', "number": "'+4930100", "n": "3"}


def test_xlsx_keeps_formula_looking_text_as_text(tmp_path: Path) -> None:
    out = tmp_path / "out.xlsx"
    write_xlsx([HOSTILE, {"n": None, "extra": "\x07bell"}], out, "cdrs")
    sheet = load_workbook(out)["cdrs"]
    assert [c.value for c in sheet[1]] == ["caller_name", "number", "n", "extra"]
    assert [c.data_type for c in sheet[2]][:3] == ["s", "s", "n"]
    assert [c.value for c in sheet[2]][:3] == ['=HYPERLINK("http://x")', "+4930100", 3]
    assert sheet["D3"].value == "bell"
    assert sheet["A1"].font.b


def test_xlsx_to_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HqCliError) as caught:
        write_xlsx([HOSTILE], tmp_path / "missing" / "out.xlsx", "x")
    assert (caught.value.error_id, caught.value.exit_code) == ("export-unwritable", 2)


def test_progress_draws_only_when_enabled() -> None:
    shown, hidden = io.StringIO(), io.StringIO()
    for stream, enabled in ((shown, True), (hidden, False)):
        progress = Progress(stream, enabled)
        progress.transfer(512_000, 1_024_000)
        progress.finish()
    assert shown.getvalue() == "\r 50% 0.5 MB of 1.0 MB\x1b[K\n"
    assert hidden.getvalue() == ""


def client(handler: httpx.MockTransport) -> HqClient:
    return HqClient(HqTarget("http://hq.test", "t", 5.0), transport=handler)


def test_hq_errors_keep_their_error_id_problems_and_exit_code() -> None:
    body = {
        "error_id": "invalid-request",
        "message": "query.limit: too big",
        "details": {"problems": [{"where": "query.limit", "problem": "too big"}]},
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json=body))
    with pytest.raises(HqCliError) as caught, client(transport) as hq:
        hq.get("/api/v1/cdrs", limit=5000)
    assert caught.value.exit_code == 2
    assert caught.value.lines() == [
        "error invalid-request: query.limit: too big",
        "  query.limit: too big",
    ]


def test_a_field_problem_names_the_field_and_a_directory_problem_its_entries() -> None:
    problems = [
        {"where": "body.timezone", "problem": "unknown time zone"},
        {"error_id": "unknown-site", "message": "names site 'x'", "entries": ["trunk t", "site x"]},
    ]
    refused = HqCliError("invalid-request", "refused", details={"problems": problems})
    assert refused.lines()[1:] == [
        "  timezone: unknown time zone",
        "  trunk t, site x: names site 'x' (unknown-site)",
    ]


def test_field_words_and_a_file_make_the_entry_hq_validates(tmp_path: Path) -> None:
    words = ["name=Berlin office", 'extensions=["7001"]', "min_length=4", "note=a=b"]
    assert assignments(words) == {
        "name": "Berlin office", "extensions": ["7001"], "min_length": "4", "note": "a=b",
    }  # fmt: skip
    entry_file = tmp_path / "site.yaml"
    entry_file.write_text("id: ignored\nsip_address: 10.0.0.1\nname: From file\n")
    made = new_entry("berlin", ["name=Berlin"], str(entry_file), io.StringIO())
    assert made == {"id": "berlin", "sip_address": "10.0.0.1", "name": "Berlin"}
    current = {"id": "berlin", "name": "Berlin", "code": "12"}
    changed = changed_entry(current, ["id=other", "timezone=Europe/Berlin"], None, ["code"],
                            io.StringIO())  # fmt: skip
    assert changed == {"id": "berlin", "name": "Berlin", "timezone": "Europe/Berlin"}


@pytest.mark.parametrize(
    ("words", "unset", "error_id"),
    [(["name"], [], "bad-field"), (["Name=x"], [], "bad-field"), (["targets=[1,"], [], "bad-field"),
     ([], [], "nothing-to-change"), ([], ["no such"], "bad-field")],
)  # fmt: skip
def test_a_bad_field_word_is_a_usage_error(
    words: list[str], unset: list[str], error_id: str
) -> None:
    with pytest.raises(HqCliError) as caught:
        changed_entry({"id": "a"}, words, None, unset, io.StringIO())
    assert (caught.value.error_id, caught.value.exit_code) == (error_id, 2)


def test_an_entry_file_that_is_not_one_mapping_is_refused(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    for file, error_id in (
        (str(listed), "file-invalid"),
        (str(tmp_path / "none"), "file-unreadable"),
    ):
        with pytest.raises(HqCliError) as caught:
            new_entry("a", [], file, io.StringIO())
        assert caught.value.error_id == error_id
    assert new_entry("a", [], "-", io.StringIO('{"sip_address": "h"}'))["sip_address"] == "h"


def test_an_answer_that_is_not_hq_still_gets_an_error_id() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>proxy"))
    with pytest.raises(HqCliError) as caught, client(transport) as hq:
        hq.get("/api/v1/sites")
    assert (caught.value.error_id, caught.value.exit_code) == ("http-502", 1)


def test_a_damaged_download_leaves_no_file(tmp_path: Path) -> None:
    data = b"RIFF" + bytes(1000)
    good = hashlib.sha256(data).hexdigest()

    def answer(request: httpx.Request) -> httpx.Response:
        digest = good if request.url.path.endswith("good") else "0" * 64
        return httpx.Response(200, content=data, headers={"X-Content-SHA256": digest})

    seen: list[int] = []
    with client(httpx.MockTransport(answer)) as hq:
        assert hq.download("/r/good", tmp_path / "good.wav", lambda n, _: seen.append(n)) == good
        with pytest.raises(HqCliError) as caught:
            hq.download("/r/bad", tmp_path / "bad.wav", lambda n, _: None)
    assert caught.value.error_id == "checksum-mismatch"
    assert (tmp_path / "good.wav").read_bytes() == data
    assert seen[-1] == len(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.wav"]
