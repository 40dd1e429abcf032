"""Request body decoding with a hard bound on the decoded size.

Every decoder produces at most ``limit`` bytes and stops as soon as it would produce more, so a small
compressed body that expands to gigabytes (a decompression bomb) costs at most ``limit`` bytes of memory
and ends in :class:`TooLarge`, never in an out-of-memory server.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli
import zstandard

__all__ = ["BadBody", "TooLarge", "decode_body", "inflate_bounded"]

_CHUNK = 64 * 1024
_ZSTD_SLICE = 128


class BadBody(ValueError):
    """The body cannot be decoded (corrupt or unsupported encoding)."""


class TooLarge(ValueError):
    """The decoded body would exceed the limit."""


def _zlib(data: bytes, limit: int, wbits: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=wbits)
    out = bytearray()
    pending = data
    while True:
        out += decompressor.decompress(pending, limit + 1 - len(out))
        if len(out) > limit:
            raise TooLarge(f"decompressed body exceeds {limit} bytes")
        pending = decompressor.unconsumed_tail
        if not pending:
            break
    out += decompressor.flush()
    if len(out) > limit:
        raise TooLarge(f"decompressed body exceeds {limit} bytes")
    if not decompressor.eof:
        raise zlib.error("truncated stream")
    return bytes(out)


def _gzip(data: bytes, limit: int) -> bytes:
    return _zlib(data, limit, 16 + zlib.MAX_WBITS)


def inflate_bounded(data: bytes, limit: int) -> bytes:
    """HTTP ``deflate`` is meant to be zlib-wrapped, but some clients send raw deflate: accept both."""
    try:
        return _zlib(data, limit, zlib.MAX_WBITS)
    except zlib.error:
        return _zlib(data, limit, -zlib.MAX_WBITS)


def _brotli(data: bytes, limit: int) -> bytes:
    decompressor = brotli.Decompressor()
    out = bytearray(decompressor.process(data, output_buffer_limit=_CHUNK))
    # With the output capped, the decompressor keeps the rest of its output until asked with empty input.
    while len(out) <= limit and not decompressor.can_accept_more_data():
        out += decompressor.process(b"", output_buffer_limit=_CHUNK)
    if len(out) > limit:
        raise TooLarge(f"decompressed body exceeds {limit} bytes")
    if not decompressor.is_finished():
        raise brotli.error("truncated stream")
    return bytes(out)


def _zstd(data: bytes, limit: int) -> bytes:
    # zstandard's decompressobj has no output cap, so feed it small slices of input: one slice expands to at
    # most a few MB (zstd's ratio tops out near 1:32768), and we stop as soon as the limit is passed.
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    out = bytearray()
    for start in range(0, len(data), _ZSTD_SLICE):
        if decompressor.eof:
            break
        out += decompressor.decompress(data[start : start + _ZSTD_SLICE])
        if len(out) > limit:
            raise TooLarge(f"decompressed body exceeds {limit} bytes")
    if not decompressor.eof:
        raise zstandard.ZstdError("truncated stream")
    return bytes(out)


def _identity(data: bytes, limit: int) -> bytes:
    if len(data) > limit:
        raise TooLarge(f"body exceeds {limit} bytes")
    return data


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": inflate_bounded,
    "br": _brotli,
    "zstd": _zstd,
    "identity": _identity,
    "": _identity,
}


def decode_body(data: bytes, content_encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (a comma-separated list, applied in order, so undone in reverse)."""
    encodings = [part.strip().lower() for part in content_encoding.split(",")] if content_encoding else [""]
    for encoding in reversed(encodings):
        decoder = _DECODERS.get(encoding)
        if decoder is None:
            raise BadBody(f"unsupported Content-Encoding {encoding!r}")
        try:
            data = decoder(data, limit)
        except TooLarge:
            raise
        except (zlib.error, brotli.error, zstandard.ZstdError, EOFError, OSError) as exc:
            raise BadBody(f"invalid {encoding} body: {exc}") from None
    return data
