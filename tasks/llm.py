"""The language-model call: one POST to an OpenAI-compatible `{LLM_API_BASE}/chat/completions`, held to the
time budget (LLM_TIMEOUT, connect to last byte) and a size cap. Any failure is a `ModelError` naming what went
wrong (timeout, refused, http_500, garbage...): the caller sends the FAQ's answer instead."""

from __future__ import annotations

import json
import time
from typing import Any

import requests
from urllib3.exceptions import ProtocolError, ReadTimeoutError

MAX_BODY = 256 * 1024  # bytes of a response read: a chat completion of a few hundred characters is a few KiB
CHUNK = 1024


class ModelError(Exception):
    """No usable completion; `reason` is a short code for the log and the delivery."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def complete(settings: Any, messages: list[dict[str, str]], max_chars: int) -> str:
    """The model's reply text (maybe empty: the caller judges it)."""
    budget = float(settings.llm_timeout)
    deadline = time.monotonic() + budget
    headers = {"Content-Type": "application/json"}
    if settings.llm_api_key:
        headers["Authorization"] = f"Bearer {settings.llm_api_key}"
    body = {"model": settings.llm_model, "messages": messages, "temperature": 0, "stream": False,
            "max_tokens": max_chars * 2}  # fmt: skip
    url = settings.llm_api_base.rstrip("/") + "/chat/completions"
    try:
        with requests.post(url, json=body, headers=headers, timeout=(min(budget, 3.0), budget), stream=True) as r:
            raw = _read(r, deadline)
    except requests.Timeout as exc:
        raise ModelError("timeout", f"no answer within {budget:g} s") from exc
    except requests.ConnectionError as exc:
        raise ModelError("refused", str(exc)[:200]) from exc
    except requests.RequestException as exc:
        raise ModelError("http", str(exc)[:200]) from exc
    if r.status_code != 200:
        raise ModelError(f"http_{r.status_code}", raw[:200].decode("utf-8", "replace"))
    return _content(raw)


def _read(r: requests.Response, deadline: float) -> bytes:
    """The body as it arrives, refused once it outgrows MAX_BODY or the budget: a server trickling bytes is cut off
    at the first piece past the deadline (each wait for a piece is bounded by the read timeout)."""
    out = bytearray()
    try:
        while chunk := r.raw.read1(CHUNK):
            out += chunk
            if len(out) > MAX_BODY:
                raise ModelError("garbage", f"response over {MAX_BODY} bytes")
            if time.monotonic() > deadline:
                raise ModelError("timeout", "the budget ran out while the answer was arriving")
    except ReadTimeoutError as exc:
        raise ModelError("timeout", "the answer stopped arriving") from exc
    except (ProtocolError, OSError) as exc:
        raise ModelError("http", f"the answer was cut: {exc}"[:200]) from exc
    return bytes(out)


def _content(raw: bytes) -> str:
    """choices[0].message.content of a chat completion; ModelError("garbage") for anything else."""
    try:
        doc = json.loads(raw)
        content = doc["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ModelError("garbage", f"not a chat completion: {raw[:120]!r}") from exc
    if not isinstance(content, str):
        raise ModelError("garbage", "message.content is not text")
    return content
