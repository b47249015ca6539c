"""Response bodies within bounds: at most so many bytes on the wire, and at most so many
once decompressed, whether the server said `Content-Encoding: gzip` (or deflate) or sent
a `.gz` file as it is.

Decompression goes through zlib with `max_length`, one bounded piece at a time, so a gzip
bomb (1 MB that unpacks to gigabytes) costs no more memory than the limit before it is
refused. Several gzip members one after the other are read as one stream, as gunzip does.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from digestd.errors import SourceError

MB = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
_AUTO = 32 + zlib.MAX_WBITS  # a gzip or a zlib header, whichever is there
_RAW_DEFLATE = -zlib.MAX_WBITS  # "deflate" as some servers send it, without the zlib header


class TooLargeError(SourceError):
    """The response is over one of the limits; retrying would only fetch it again."""


def _megabytes(limit: int) -> str:
    return f"{limit / MB:g} MB"


def too_large(what: str, limit: int, *, decompressed: bool) -> TooLargeError:
    if decompressed:
        return TooLargeError(
            f"{what}: the response is larger than {_megabytes(limit)} once decompressed",
            hint="raise ingest.max_decompressed_mb if the feed really is that large",
        )
    return TooLargeError(
        f"{what}: the response is larger than {_megabytes(limit)}",
        hint="raise ingest.max_response_mb if the feed really is that large",
    )


class Inflater:
    """Incremental gzip/zlib/deflate decompression that never holds more than `limit` bytes."""

    def __init__(self, limit: int, *, what: str, raw_deflate_fallback: bool = False) -> None:
        self._limit, self._what = limit, what
        self._wbits = _AUTO
        self._engine = zlib.decompressobj(self._wbits)
        self._fallback = raw_deflate_fallback
        self._started = False
        self._out = bytearray()

    def feed(self, data: bytes) -> None:
        while data:
            room = self._limit + 1 - len(self._out)  # one byte more than allowed tells "too large"
            try:
                self._out += self._engine.decompress(data, room)
            except zlib.error as error:
                if self._fallback and not self._started:
                    self._fallback, self._wbits = False, _RAW_DEFLATE
                    self._engine = zlib.decompressobj(self._wbits)
                    continue
                raise SourceError(f"{self._what}: the compressed response is damaged ({error})") from None
            self._started = True
            if len(self._out) > self._limit:
                raise too_large(self._what, self._limit, decompressed=True)
            if not self._engine.eof:
                data = self._engine.unconsumed_tail
                continue
            data = self._engine.unused_data
            if not data.startswith(GZIP_MAGIC):
                return  # what follows the stream is not another member: ignored, as browsers do
            self._engine = zlib.decompressobj(self._wbits)

    def finish(self) -> bytes:
        if self._started and not self._engine.eof:
            raise SourceError(f"{self._what}: the compressed response is damaged (it ends early)")
        return bytes(self._out)


def gunzip(content: bytes, *, limit: int, what: str) -> bytes:
    """A gzip file's contents, refused once they pass `limit` bytes."""
    inflater = Inflater(limit, what=what)
    inflater.feed(content)
    return inflater.finish()


def read_body(
    chunks: Iterable[bytes], *, content_encoding: str, max_bytes: int, max_decompressed: int, what: str
) -> bytes:
    """The body from its chunks as they arrive: decoded, and a raw `.gz` body unpacked,
    within both limits. An unknown encoding is left as it is (the parser will say so)."""
    coding = content_encoding.strip().lower()
    inflater = None
    if coding in ("gzip", "x-gzip", "deflate"):
        inflater = Inflater(max_decompressed, what=what, raw_deflate_fallback=coding == "deflate")
    received = 0
    raw = bytearray()
    for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise too_large(what, max_bytes, decompressed=False)
        if inflater is not None:
            inflater.feed(chunk)
        else:
            raw += chunk
    body = inflater.finish() if inflater is not None else bytes(raw)
    if body[:2] == GZIP_MAGIC:  # a .gz file served as it is (no Content-Encoding)
        body = gunzip(body, limit=max_decompressed, what=what)
    return body
