"""The envelope parser and bounded body decoding (pure functions, no database)."""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib
from collections.abc import Callable

import brotli
import orjson
import pytest
import zstandard

from stackwatch.server.ingest.compat import store_to_envelope
from stackwatch.server.ingest.decode import BadBody, TooLarge, decode_body, inflate_bounded
from stackwatch.server.ingest.envelope import (
    MAX_ITEMS,
    Envelope,
    EnvelopeError,
    Item,
    parse_envelope,
    serialize_envelope,
)
from stackwatch.server.ingest.errors import IngestError

# --- envelopes ---------------------------------------------------------------------------------------------


def test_items_with_lengths() -> None:
    payload = b'{"message":"line one\\nline two"}'
    binary = b"\x00\n\xff\nbinary with newlines\n"
    data = (
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://k@h/1"}\n'
        + orjson.dumps({"type": "event", "length": len(payload)})
        + b"\n"
        + payload
        + b"\n"
        + orjson.dumps({"type": "attachment", "length": len(binary), "filename": "a.bin"})
        + b"\n"
        + binary
        + b"\n"
    )
    envelope = parse_envelope(data)
    assert envelope.headers == {"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "dsn": "https://k@h/1"}
    assert [item.type for item in envelope.items] == ["event", "attachment"]
    assert envelope.items[0].payload == payload
    assert envelope.items[1].payload == binary
    assert envelope.items[1].headers["filename"] == "a.bin"


def test_items_without_length_run_to_the_next_newline() -> None:
    data = b'{}\n{"type":"event"}\n{"a":1}\n{"type":"session"}\n{"b":2}\n'
    envelope = parse_envelope(data)
    assert [(item.type, item.payload) for item in envelope.items] == [("event", b'{"a":1}'), ("session", b'{"b":2}')]


def test_mixed_lengths() -> None:
    data = b'{}\n{"type":"a","length":3}\nx\ny\n{"type":"b"}\nrest'
    envelope = parse_envelope(data)
    assert [(item.type, item.payload) for item in envelope.items] == [("a", b"x\ny"), ("b", b"rest")]


@pytest.mark.parametrize(
    "data",
    [
        b'{}\n{"type":"event","length":7}\n{"a":1}',
        b'{}\n{"type":"event","length":7}\n{"a":1}\n',
        b'{}\n{"type":"event"}\n{"a":1}',
        b'{}\n{"type":"event"}\n{"a":1}\n',
    ],
    ids=["length-no-final-newline", "length-final-newline", "no-length-no-final-newline", "no-length-final-newline"],
)
def test_final_newline_is_optional(data: bytes) -> None:
    (item,) = parse_envelope(data).items
    assert item.payload == b'{"a":1}'


def test_empty_payloads() -> None:
    data = b'{}\n{"type":"attachment","length":0}\n\n{"type":"event","length":2}\n{}'
    envelope = parse_envelope(data)
    assert [(item.type, item.payload) for item in envelope.items] == [("attachment", b""), ("event", b"{}")]


def test_header_only() -> None:
    assert parse_envelope(b'{"event_id":"x"}').items == []
    assert parse_envelope(b'{"event_id":"x"}\n').items == []
    assert parse_envelope(b"{}\n\n\n").items == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"  \n ", "empty"),
        (b"not json\n", "envelope header"),
        (b"[]\n", "envelope header"),
        (b'{}\n{"type":"event","length":100}\n{"a":1}\n', "truncated"),
        (b'{}\n{"type":"event","length":3}\n{"a":1}\n', "longer than its length"),
        (b'{}\n{"type":"event","length":"7"}\n{"a":1}\n', "length"),
        (b'{}\n{"type":"event","length":-1}\n{"a":1}\n', "length"),
        (b'{}\n{"type":"event","length":true}\n{"a":1}\n', "length"),
        (b'{}\n{"type":"event","length":1.5}\n{"a":1}\n', "length"),
        (b'{}\n{"length":2}\n{}\n', "no type"),
        (b'{}\n{"type":7}\n{}\n', "no type"),
        (b"{}\nnot json\n{}\n", "item 0 header"),
        (b'{}\n{"type":"a","length":1}\nx\n"str"\n', "item 1 header"),
    ],
)
def test_malformed_envelopes(data: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        parse_envelope(data)


def test_truncated_real_envelope_at_every_point_fails_cleanly() -> None:
    payload = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"hello"}'
    data = b'{}\n{"type":"event","length":%d}\n' % len(payload) + payload + b"\n"
    for cut in range(1, len(data) - 1):
        try:
            envelope = parse_envelope(data[:cut])
        except EnvelopeError:
            continue
        # A cut that leaves a well-formed prefix parses to fewer or no items, never a shortened payload.
        assert all(item.payload == payload for item in envelope.items), cut


def test_too_many_items() -> None:
    data = b"{}\n" + b'{"type":"x","length":0}\n\n' * (MAX_ITEMS + 1)
    with pytest.raises(EnvelopeError, match="more than"):
        parse_envelope(data)
    assert len(parse_envelope(b"{}\n" + b'{"type":"x","length":0}\n\n' * MAX_ITEMS).items) == MAX_ITEMS


def test_serialize_round_trip() -> None:
    envelope = Envelope(
        {"event_id": "9ec79c33ec9942ab8353589fcb2e04dc"},
        [Item({"type": "event"}, b'{"a":"b\\nc"}'), Item({"type": "attachment", "length": 999}, b"x\ny\n")],
    )
    data = serialize_envelope(envelope)
    parsed = parse_envelope(data)
    assert parsed.headers == envelope.headers
    assert [item.payload for item in parsed.items] == [item.payload for item in envelope.items]
    assert parsed.items[1].headers["length"] == 4  # recomputed, never trusted


# --- bounded decoding --------------------------------------------------------------------------------------

DATA = b'{"hello": "world"}\n' * 500
LIMIT = 1 << 20
BOMB_SIZE = 64 << 20  # what each bomb expands to: 64 times the limit


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "identity": lambda data: data,
    "": lambda data: data,
}


@pytest.mark.parametrize("encoding", list(ENCODERS))
def test_each_encoding_decodes(encoding: str) -> None:
    assert decode_body(ENCODERS[encoding](DATA), encoding, LIMIT) == DATA
    assert decode_body(ENCODERS[encoding](DATA), encoding.upper(), LIMIT) == DATA


def test_raw_deflate_is_accepted() -> None:
    assert decode_body(_raw_deflate(DATA), "deflate", LIMIT) == DATA
    assert inflate_bounded(_raw_deflate(DATA), LIMIT) == DATA


def test_zstd_without_content_size_in_the_frame() -> None:
    compressor = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    data = compressor.compress(DATA) + compressor.flush()
    assert decode_body(data, "zstd", LIMIT) == DATA


def test_stacked_encodings_are_undone_in_reverse() -> None:
    data = brotli.compress(gzip.compress(DATA))
    assert decode_body(data, "gzip, br", LIMIT) == DATA
    with pytest.raises(BadBody):
        decode_body(data, "br, gzip", LIMIT)


@pytest.mark.parametrize("encoding", list(ENCODERS))
def test_exactly_the_limit_is_allowed_and_one_more_byte_is_not(encoding: str) -> None:
    data = b"a" * 1000
    assert decode_body(ENCODERS[encoding](data), encoding, 1000) == data
    with pytest.raises(TooLarge):
        decode_body(ENCODERS[encoding](data), encoding, 999)


def _gzip_bomb() -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(BOMB_SIZE >> 20)) + compressor.flush()


def _zlib_bomb(wbits: int) -> Callable[[], bytes]:
    def make() -> bytes:
        compressor = zlib.compressobj(1, zlib.DEFLATED, wbits)
        chunk = bytes(1 << 20)
        return b"".join(compressor.compress(chunk) for _ in range(BOMB_SIZE >> 20)) + compressor.flush()

    return make


def _brotli_bomb() -> bytes:
    compressor = brotli.Compressor(quality=5)
    chunk = bytes(1 << 20)
    return b"".join(compressor.process(chunk) for _ in range(BOMB_SIZE >> 20)) + compressor.finish()


def _zstd_bomb() -> bytes:
    compressor = zstandard.ZstdCompressor(level=3, write_content_size=False).compressobj()
    chunk = bytes(1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(BOMB_SIZE >> 20)) + compressor.flush()


BOMBS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "gzip": ("gzip", _gzip_bomb),
    "deflate-zlib": ("deflate", _zlib_bomb(zlib.MAX_WBITS)),
    "deflate-raw": ("deflate", _zlib_bomb(-zlib.MAX_WBITS)),
    "br": ("br", _brotli_bomb),
    "zstd": ("zstd", _zstd_bomb),
    "gzip-in-gzip": ("gzip, gzip", lambda: gzip.compress(_gzip_bomb())),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_raise_too_large_in_bounded_memory(name: str) -> None:
    encoding, make = BOMBS[name]
    bomb = make()
    assert len(bomb) < LIMIT  # small on the wire
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge):
            decode_body(bomb, encoding, LIMIT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Unbounded decoding would hold all 64 MB; bounded decoding holds about the limit plus a slice.
    assert peak < 16 * LIMIT, peak


def test_identity_over_the_limit_is_too_large() -> None:
    with pytest.raises(TooLarge):
        decode_body(b"x" * (LIMIT + 1), "identity", LIMIT)
    with pytest.raises(TooLarge):
        decode_body(b"x" * (LIMIT + 1), "", LIMIT)


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (DATA, "gzip"),
        (DATA, "deflate"),
        (DATA, "br"),
        (DATA, "zstd"),
        (gzip.compress(DATA)[:-12], "gzip"),
        (zlib.compress(DATA)[:-10], "deflate"),
        (brotli.compress(DATA)[:-3], "br"),
        (zstandard.ZstdCompressor().compress(DATA)[:-6], "zstd"),
        (DATA, "compress"),
        (DATA, "gzip, lzma"),
    ],
    ids=[
        "plain-as-gzip",
        "plain-as-deflate",
        "plain-as-br",
        "plain-as-zstd",
        "truncated-gzip",
        "truncated-deflate",
        "truncated-br",
        "truncated-zstd",
        "unknown",
        "unknown-in-list",
    ],
)
def test_corrupt_truncated_or_unknown_is_bad_body(data: bytes, encoding: str) -> None:
    with pytest.raises(BadBody):
        decode_body(data, encoding, LIMIT)


def test_empty_compressed_body_is_bad_body() -> None:
    for encoding in ("gzip", "deflate", "br", "zstd"):
        with pytest.raises(BadBody):
            decode_body(b"", encoding, LIMIT)


# --- the legacy store body ---------------------------------------------------------------------------------


def test_store_body_forms() -> None:
    event = {"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "message": "hi"}
    for body in (
        orjson.dumps(event),
        b"  " + orjson.dumps(event) + b"\n",
        base64.b64encode(zlib.compress(orjson.dumps(event))),
    ):
        envelope = store_to_envelope(body, LIMIT)
        assert envelope.headers == {"event_id": event["event_id"]}
        (item,) = envelope.items
        assert item.type == "event"
        assert orjson.loads(item.payload) == event
    transaction = store_to_envelope(orjson.dumps({"type": "transaction"}), LIMIT)
    assert transaction.items[0].type == "transaction"
    assert transaction.headers == {}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"   ", 400),
        (b"@@@not base64", 400),
        (base64.b64encode(b"not zlib"), 400),
        (base64.b64encode(zlib.compress(b"[1, 2]")), 400),
        (base64.b64encode(zlib.compress(b"{nope")), 400),
        (b"{nope", 400),
        (base64.b64encode(zlib.compress(b" " * (LIMIT + 1))), 413),
    ],
)
def test_store_body_errors(body: bytes, status: int) -> None:
    with pytest.raises(IngestError) as caught:
        store_to_envelope(body, LIMIT)
    assert caught.value.status == status
