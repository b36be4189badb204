"""Reading a request body: the size limit and gzip, before anything is parsed.

The validation of what the body holds lives in `mlpilot.runtime._inputs`
(re-exported here for older imports).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable

from mlpilot.exceptions import InvalidParameterError, ResourceLimitError, SourceFormatError
from mlpilot.runtime._inputs import (
    build_frame,
    coerce_csv_chunk,
    columns_from_payload,
    convert_columns,
    csv_dtypes,
    parse_json,
)

GZIP_MAGIC = b"\x1f\x8b"
_CONTENT_ENCODINGS = {"identity": "identity", "gzip": "gzip", "x-gzip": "gzip"}


def content_encoding(header: str | None) -> str:
    """``"identity"`` or ``"gzip"`` for a Content-Encoding header; anything else is refused."""
    if header is None:
        return "identity"
    encoding = _CONTENT_ENCODINGS.get(header.strip().lower() or "identity")
    if encoding is None:
        raise InvalidParameterError(
            f"The Content-Encoding {header[:40]!r} is not accepted; send the body uncompressed or with "
            "Content-Encoding: gzip."
        )
    return encoding


class Inflater:
    """Gunzip a body chunk by chunk, refusing it as soon as the decompressed size passes ``limit``.

    ``too_big`` makes the error raised then (a `ResourceLimitError`, 413),
    before more is decompressed: a small gzip bomb costs ``limit`` bytes at most.
    """

    def __init__(self, limit: int, too_big: Callable[[int], Exception]) -> None:
        self.limit = limit
        self.size = 0
        self._too_big = too_big
        self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        try:
            while data:
                block = self._inflate.decompress(data, self.limit - self.size + 1)
                self.size += len(block)
                if self.size > self.limit:
                    raise self._too_big(self.limit)
                out.append(block)
                data = self._inflate.unconsumed_tail
                if self._inflate.eof and self._inflate.unused_data:
                    raise SourceFormatError("The gzip body has data after its end; send one gzip stream.")
        except zlib.error as exc:
            raise SourceFormatError(
                f"The body is sent as gzip (Content-Encoding: gzip or a gzip file) but is not valid gzip: {exc}."
            ) from None
        return b"".join(out)

    def finish(self) -> None:
        if not self._inflate.eof:
            raise SourceFormatError("The gzip body is cut short (no end of stream); send the whole gzip file.")


def _body_limit_error(limit: int) -> ResourceLimitError:
    return ResourceLimitError(
        f"The request body exceeds the limit of {limit} bytes (decompressed). "
        "Send fewer rows per request, or use the predict.csv endpoint for batches."
    )


async def read_body(
    stream: AsyncIterator[bytes], content_length: str | None, limit: int, encoding: str | None = None
) -> bytes:
    """Read a request body, refusing it before parsing when it exceeds ``limit`` bytes.

    A gzip body (``encoding`` is the Content-Encoding header) is decompressed
    as it arrives, and the limit applies to the decompressed bytes as well.
    """
    inflater = Inflater(limit, _body_limit_error) if encoding is not None and content_encoding(encoding) == "gzip" else None
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise InvalidParameterError(
                f"The Content-Length header must be an integer. Got {content_length[:40]!r}."
            ) from None
        if declared > limit:
            raise ResourceLimitError(
                f"The request body is {declared} bytes; the limit is {limit} bytes. "
                "Send fewer rows per request, or use the predict.csv endpoint for batches."
            )
    chunks = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise ResourceLimitError(
                f"The request body exceeds the limit of {limit} bytes. "
                "Send fewer rows per request, or use the predict.csv endpoint for batches."
            )
        chunks.append(chunk if inflater is None else inflater.feed(chunk))
    if inflater is not None and size:
        inflater.finish()
    return b"".join(chunks)


__all__ = [
    "GZIP_MAGIC", "Inflater", "build_frame", "coerce_csv_chunk", "columns_from_payload", "content_encoding",
    "convert_columns", "csv_dtypes", "parse_json", "read_body",
]
