"""The LMDB store: outbox order and acks, state, and refusing unusable files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from appliance.store import Outbox, StateStore, Store, StoreFullError, StoreOpenError


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", map_size_mb=16)
    yield opened
    opened.close()


def test_outbox_reads_in_append_order_in_batches(store: Store) -> None:
    outbox = Outbox(store, "cdr")
    seqs = outbox.append_many([f"cdr-{i}".encode() for i in range(10)])
    assert seqs == list(range(1, 11))
    first = outbox.read_batch(limit=4)
    assert [s for s, _ in first] == [1, 2, 3, 4]
    rest = outbox.read_batch(after=first[-1][0], limit=100)
    assert [p for _, p in rest] == [f"cdr-{i}".encode() for i in range(4, 10)]


def test_outbox_deletes_only_acknowledged_entries(store: Store) -> None:
    outbox = Outbox(store, "cdr")
    outbox.append_many([b"a", b"b", b"c", b"d"])
    assert outbox.ack([2, 4, 99]) == 2
    assert [s for s, _ in outbox.read_batch()] == [1, 3]
    assert outbox.ack_through(1) == 1
    assert outbox.pending() == 1


def test_outbox_never_reuses_a_sequence_number(store: Store) -> None:
    outbox = Outbox(store, "cdr")
    outbox.append_many([b"a", b"b"])
    outbox.ack_through(2)
    assert outbox.pending() == 0
    assert outbox.append(b"c") == 3


def test_outboxes_are_independent(store: Store) -> None:
    cdr, rec = Outbox(store, "cdr"), Outbox(store, "recording")
    cdr.append(b"x")
    assert rec.append(b"y") == 1
    assert rec.pending() == 1
    assert cdr.pending() == 1


def test_outbox_survives_reopen(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", map_size_mb=16)
    Outbox(store, "cdr").append_many([b"a", b"b"])
    store.close()
    store = Store.open(tmp_path / "s", map_size_mb=16)
    assert Outbox(store, "cdr").read_batch() == [(1, b"a"), (2, b"b")]
    store.close()


def test_state_update_is_read_modify_write(store: Store) -> None:
    state = StateStore(store)
    for _ in range(5):
        state.update("sim:8986001:calls", lambda n: n + 1, default=0)
    state.put("routing:snapshot", {"version": 7, "routes": [["8", "site-b"]]})
    assert state.get("sim:8986001:calls") == 5
    assert state.get("routing:snapshot")["version"] == 7
    assert [k for k, _ in state.items("sim:")] == ["sim:8986001:calls"]
    assert state.delete("sim:8986001:calls") is True
    assert state.get("sim:8986001:calls", default=0) == 0


def test_store_opens_once_per_process(store: Store) -> None:
    with pytest.raises(StoreOpenError, match="already open in this process"):
        Store.open(store.path)


def test_full_store_raises_a_clear_error(store: Store) -> None:
    outbox = Outbox(store, "cdr")
    big_batch = [b"x" * 4000] * 5000
    with pytest.raises(StoreFullError, match=r"raise store\.map_size_mb"):
        outbox.append_many(big_batch)
    assert outbox.pending() == 0


def test_foreign_lmdb_environment_is_refused(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "foreign"), max_dbs=4)
    env.open_db(b"invoices")
    env.close()
    with pytest.raises(StoreOpenError, match=r"not a callmesh store .*invoices"):
        Store.open(tmp_path / "foreign")


def test_corrupt_data_file_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "corrupt"
    path.mkdir()
    garbage = b"\x00garbage" * 4096
    (path / "data.mdb").write_bytes(garbage)
    with pytest.raises(StoreOpenError, match=r"move data\.mdb aside"):
        Store.open(path)
    assert (path / "data.mdb").read_bytes() == garbage


def test_newer_format_is_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    with store.write() as txn:
        store.meta_put("version", b"99", txn)
    store.close()
    with pytest.raises(StoreOpenError, match="format version 99"):
        Store.open(tmp_path / "s")


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreOpenError, match="cannot create data directory"):
        Store.open(tmp_path / "file" / "store")
