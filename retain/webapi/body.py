"""Reading request bodies safely: size limits before and after decompression, JSON and NDJSON."""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
from flask import request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from retain.webapi.errors import FieldError

_CHUNK = 64 * 1024


def raw_body(limit: int) -> bytes:
    """The request body, decompressed, at most ``limit`` bytes (413 beyond, even inside gzip)."""
    length = request.content_length
    if length is not None and length > limit:
        raise RequestEntityTooLarge(f"request body of {length} bytes exceeds the limit of {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge(f"request body exceeds the limit of {limit} bytes")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported (use gzip)")
    # Decompress in bounded steps so a small gzip bomb cannot allocate gigabytes.
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32 if encoding == "gzip" else zlib.MAX_WBITS)
    out = bytearray()
    try:
        chunk = inflater.decompress(data, limit + 1)
        while True:
            out += chunk
            if len(out) > limit:
                raise RequestEntityTooLarge(f"decompressed body exceeds the limit of {limit} bytes")
            if not inflater.unconsumed_tail:
                break
            chunk = inflater.decompress(inflater.unconsumed_tail, limit + 1 - len(out))
    except zlib.error as exc:
        raise FieldError("body", f"body is not valid {encoding}: {exc}") from None
    if not inflater.eof:
        raise FieldError("body", f"body is truncated {encoding} data")
    return bytes(out)


def json_body(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise FieldError("body", f"body is not valid JSON: {exc}") from None


def ndjson_lines(data: bytes) -> list[Any]:
    """Messages of an NDJSON body; a line that is not JSON is kept as its text, to be rejected."""
    messages: list[Any] = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            messages.append(msgspec.json.decode(line))
        except msgspec.DecodeError:
            messages.append(line.decode("utf-8", "replace"))
    return messages
