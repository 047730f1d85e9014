"""Filling an appliance's LMDB store for tests of what happens when it runs out of room."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from appliance.store import Store, StoreFullError


def fill(
    store: Store, sizes: tuple[int, ...] = (262144, 4000, 100, 10), budget: int | None = None
) -> None:
    """Write filler records until not even a small one fits, or ``budget`` bytes are used."""
    filler = store.db("filler")
    for size in sizes:
        try:
            while budget is None or store.usage()["used_bytes"] < budget:
                with store.write() as txn:
                    txn.put(os.urandom(16), os.urandom(size), db=filler)
        except StoreFullError:
            continue


@contextlib.contextmanager
def full(store: Store, grow: bool = False) -> Iterator[Any]:
    """The store full to the last page: every write fails until the block ends.

    While a reader holds its snapshot, LMDB cannot reuse the pages freed after it; once
    the free pages from before it are used up too, every write needs a page the map
    does not have. Ending the reader frees some pages again; ``grow`` also doubles the
    map, as an operator raising ``store.map_size_mb`` would (only for a store no other
    process has open).
    """
    store.db("filler-tiny")  # created while there is room
    fill(store)
    reader = store.read()
    try:
        fill(store, (10, 10))
        _use_last_pages(store)
        yield reader
    finally:
        reader.abort()
        if grow:
            store.env.set_mapsize(2 * store.usage()["map_size_bytes"])


def _use_last_pages(store: Store) -> None:
    """Rewrite one record of a one-page database (the cheapest commit) until none fits."""
    tiny = store.db("filler-tiny")
    try:
        while True:
            with store.write() as txn:
                txn.put(b"k", os.urandom(8), db=tiny)
    except StoreFullError:
        return
