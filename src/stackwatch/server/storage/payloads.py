"""Reading stored event payloads: zstd frames, with or without one of the project's trained dictionaries.

Every payload is one zstd frame, and a frame's header carries the id of the dictionary it was compressed with
(0 when none), which is the id of its row in ``compression_dicts``. So a reader needs no column to know how to
open a payload: payloads written before dictionaries existed, or with an older dictionary of the project, open
as they are. Dictionary rows never change once written, so a process keeps each one it has loaded for as long as
it runs, per database (the engine), one loaded dictionary per id and one decompressor per dictionary and thread
(a zstandard decompressor must not be used by two threads at once).
"""

from __future__ import annotations

import threading
import weakref

import zstandard
from sqlalchemy import Connection, Engine, select

from stackwatch.server.storage.schema import compression_dicts

__all__ = ["PayloadUnreadable", "dictionary_id", "load_dictionary", "read_payload"]


class PayloadUnreadable(Exception):
    """A stored payload cannot be opened: its dictionary is gone, or the bytes are not a zstd frame."""


def dictionary_id(payload: bytes) -> int:
    """The id of the dictionary ``payload`` was compressed with; 0 when none."""
    try:
        return int(zstandard.get_frame_parameters(payload).dict_id)
    except zstandard.ZstdError as exc:
        raise PayloadUnreadable(f"the stored payload is not a zstd frame ({exc})") from None


def load_dictionary(connection: Connection, dict_id: int) -> zstandard.ZstdCompressionDict | None:
    data = connection.execute(select(compression_dicts.c.data).where(compression_dicts.c.id == dict_id)).scalar()
    return None if data is None else zstandard.ZstdCompressionDict(bytes(data))


class _Decompressors(threading.local):
    def __init__(self) -> None:
        self.by_id: dict[int, zstandard.ZstdDecompressor] = {}


class _Reader:
    """The dictionaries of one database that this process has loaded."""

    def __init__(self) -> None:
        self._dictionaries: dict[int, zstandard.ZstdCompressionDict] = {}
        self._lock = threading.Lock()
        self._local = _Decompressors()

    def decompressor(self, connection: Connection, dict_id: int) -> zstandard.ZstdDecompressor:
        found = self._local.by_id.get(dict_id)
        if found is None:
            if dict_id == 0:
                found = zstandard.ZstdDecompressor()
            else:
                found = zstandard.ZstdDecompressor(dict_data=self._dictionary(connection, dict_id))
            self._local.by_id[dict_id] = found
        return found

    def _dictionary(self, connection: Connection, dict_id: int) -> zstandard.ZstdCompressionDict:
        with self._lock:
            loaded = self._dictionaries.get(dict_id)
        if loaded is None:
            loaded = load_dictionary(connection, dict_id)
            if loaded is None:
                raise PayloadUnreadable(f"compression dictionary {dict_id} of this payload is missing")
            with self._lock:
                self._dictionaries[dict_id] = loaded
        return loaded


_READERS: weakref.WeakKeyDictionary[Engine, _Reader] = weakref.WeakKeyDictionary()
_READERS_LOCK = threading.Lock()


def _reader(engine: Engine) -> _Reader:
    with _READERS_LOCK:
        reader = _READERS.get(engine)
        if reader is None:
            reader = _READERS[engine] = _Reader()
        return reader


def read_payload(connection: Connection, payload: bytes) -> bytes:
    """The JSON bytes a stored payload holds; :class:`PayloadUnreadable` when it cannot be opened."""
    dict_id = dictionary_id(payload)
    decompressor = _reader(connection.engine).decompressor(connection, dict_id)
    try:
        return decompressor.decompress(payload)
    except zstandard.ZstdError as exc:
        raise PayloadUnreadable(f"the stored payload (dictionary {dict_id}) does not decompress: {exc}") from None
