"""What comes in over HTTP and goes out, bounded for every endpoint at once: bodies, JSON, ids in paths.

- Bodies: over WELEAD_MAX_BODY is 413, also when the client sends no Content-Length (chunked transfer). Werkzeug
  stops reading a chunked body at the cap and returns what it read as if it were the whole body, so an oversized
  playbook upload became its first 64 KiB; `CappedStream` looks one byte past the cap instead.
- JSON bodies are parsed by foundation.safe_json (no NaN/Infinity, bounded depth, no lone surrogates): a hostile
  document is a 400 even where the caller reads with `silent=True`.
- JSON answers never carry NaN or Infinity (invalid JSON that breaks every client): a value stored before such
  numbers were refused is written as null.
- An `<int:...>` id in any route past 2^63-1, what a BIGINT holds, is a 404, not an OverflowError. The check runs
  after routing: a converter `max` would make Werkzeug answer 405 for a path that other methods also serve.
"""

from __future__ import annotations

from typing import Any

from apiflask import HTTPError, abort
from flask import Flask, Request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from foundation import safe_json
from foundation.numbers import MAX_INT


class CappedStream(LimitedStream):
    """A body stream without a length, capped: reaching the cap with more to come is a 413, never a truncation."""

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__(stream, limit, is_max=True)

    def on_exhausted(self) -> None:
        if self._stream.read(1):
            raise RequestEntityTooLarge()

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted:
            self.on_exhausted()
        return data


class CappedRequest(Request):
    @cached_property
    def stream(self) -> Any:
        limit = self.max_content_length
        if limit is not None and self.content_length is None and "wsgi.input_terminated" in self.environ:
            return CappedStream(self.environ["wsgi.input"], limit)
        return super().stream


class FiniteJSONProvider(DefaultJSONProvider):
    """The app's JSON (Flask makes it every request's `json_module`). In: safe_json, a hostile document raising 400
    even where the caller reads with `silent=True`. Out: what a browser parses, non-finite floats (stored before
    they were refused) written as null."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return safe_json.loads(s)
        except safe_json.UnsafeJSON as exc:
            raise HTTPError(400, f"refused JSON body: {exc}") from None  # the API's JSON error shape

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        try:
            return super().dumps(obj, allow_nan=False, **kwargs)
        except ValueError:
            return super().dumps(safe_json.finite(obj), **kwargs)


def refuse_huge_ids(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values and any(type(v) is int and v > MAX_INT for v in values.values()):
        abort(404, "no such id: ids are below 2^63")


def install(app: Flask) -> None:
    """Call before any blueprint is registered."""
    app.request_class = CappedRequest
    app.json = FiniteJSONProvider(app)
    app.url_value_preprocessor(refuse_huge_ids)
