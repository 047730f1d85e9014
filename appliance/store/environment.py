"""The LMDB environment: opened once per process, marked as a callmesh store.

Theory of operation: LMDB keeps named databases as keys of its unnamed main database.
A new environment gets a ``meta`` database holding the store format and version; on
every open the marker is checked, so a foreign LMDB file or a store of a newer format is
refused instead of being written into. Every write transaction commits with fsync (LMDB's
default ``sync=True``), so a commit that returned survives kill -9 and power loss.

Exceptions::

    StoreError
     ├── StoreOpenError     path unusable, file corrupt or foreign, already open here
     └── StoreFullError     the map (configured size) is full
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import lmdb

FORMAT = b"callmesh-appliance-store"
FORMAT_VERSION = 1
_META = b"meta"


class StoreError(Exception):
    """Base of the store's errors."""


class StoreOpenError(StoreError):
    """The store cannot be opened; the message says what to fix."""


class StoreFullError(StoreError):
    """The LMDB map is full: raise ``store.map_size_mb`` or free space."""


class Store:
    """One LMDB environment with named sub-databases."""

    _open_paths: ClassVar[set[str]] = set()
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, env: Any, path: Path) -> None:
        self.env = env
        self.path = path
        self._dbs: dict[str, Any] = {}
        self._meta = env.open_db(_META)

    @classmethod
    def open(cls, path: Path, map_size_mb: int = 1024, max_dbs: int = 32) -> Store:
        """Open (creating if needed) the store in directory ``path``."""
        key = str(path.resolve())
        with cls._open_lock:
            if key in cls._open_paths:
                raise StoreOpenError(f"store {path} is already open in this process")
            env = _open_env(path, map_size_mb, max_dbs)
            try:
                _check_format(env, path)
            except BaseException:
                env.close()
                raise
            cls._open_paths.add(key)
        return cls(env, path)

    def db(self, name: str) -> Any:
        """The named sub-database, created on first use."""
        handle = self._dbs.get(name)
        if handle is None:
            handle = self.env.open_db(name.encode())
            self._dbs[name] = handle
        return handle

    def meta_get(self, key: str, txn: Any) -> bytes | None:
        """Read a value of the store's own bookkeeping."""
        value: bytes | None = txn.get(key.encode(), db=self._meta)
        return value

    def meta_put(self, key: str, value: bytes, txn: Any) -> None:
        """Write a value of the store's own bookkeeping inside ``txn``."""
        txn.put(key.encode(), value, db=self._meta)

    def write(self) -> Any:
        """A write transaction; commits durably when its ``with`` block ends."""
        return _WriteTxn(self.env)

    def read(self) -> Any:
        """A read-only snapshot transaction."""
        return self.env.begin(write=False)

    def usage(self) -> dict[str, int]:
        """Bytes used and the map size, for metrics and disk warnings."""
        info = self.env.info()
        stat = self.env.stat()
        used = (info["last_pgno"] + 1) * stat["psize"]
        return {"used_bytes": used, "map_size_bytes": info["map_size"]}

    def close(self) -> None:
        """Flush and close; the store may be opened again afterwards."""
        self.env.sync(True)
        self.env.close()
        with self._open_lock:
            self._open_paths.discard(str(self.path.resolve()))


class _WriteTxn:
    """Turns LMDB's MapFullError into StoreFullError at put and commit time."""

    def __init__(self, env: Any) -> None:
        self._env = env
        self._txn: Any = None

    def __enter__(self) -> Any:
        self._txn = self._env.begin(write=True)
        return self._txn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._txn.abort()
            if isinstance(exc, lmdb.MapFullError):
                raise StoreFullError(_full_message(self._env)) from exc
            return
        try:
            self._txn.commit()
        except lmdb.MapFullError as err:
            raise StoreFullError(_full_message(self._env)) from err


def _full_message(env: Any) -> str:
    size_mb = env.info()["map_size"] // (1024 * 1024)
    return f"store is full ({size_mb} MiB): raise store.map_size_mb or free disk space"


def _open_env(path: Path, map_size_mb: int, max_dbs: int) -> Any:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreOpenError(f"cannot create data directory {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK):
        raise StoreOpenError(f"data directory {path} is not writable by this user")
    try:
        return lmdb.open(
            str(path),
            map_size=map_size_mb * 1024 * 1024,
            max_dbs=max_dbs,
            subdir=True,
            sync=True,
            metasync=True,
            readahead=False,
        )
    except lmdb.Error as err:
        raise StoreOpenError(
            f"cannot open store at {path}: {err}. The file is not a usable LMDB environment; "
            "move data.mdb aside (nothing is deleted automatically) and restart"
        ) from None


def _check_format(env: Any, path: Path) -> None:
    with env.begin(write=True) as txn:
        names = [key for key, _ in txn.cursor()]
        if not names:
            meta = env.open_db(_META, txn=txn)
            txn.put(b"format", FORMAT, db=meta)
            txn.put(b"version", str(FORMAT_VERSION).encode(), db=meta)
            return
        if _META not in names:
            raise StoreOpenError(_foreign(path, names))
        meta = env.open_db(_META, txn=txn, create=False)
        if txn.get(b"format", db=meta) != FORMAT:
            raise StoreOpenError(_foreign(path, names))
        version = int(txn.get(b"version", default=b"0", db=meta))
        if version > FORMAT_VERSION:
            raise StoreOpenError(
                f"store at {path} has format version {version}; this software reads up to "
                f"{FORMAT_VERSION}: upgrade callmesh or restore the matching data directory"
            )


def _foreign(path: Path, names: list[bytes]) -> str:
    shown = ", ".join(n.decode(errors="replace") for n in names[:5])
    return (
        f"{path} holds an LMDB environment that is not a callmesh store (it has: {shown}); "
        "point data_dir at another directory or move the files aside"
    )
