"""The message library: one YAML file per message under templates/messages/, validated when loaded.

A template message follows WeChat's current rules (since May 2023): no `first`/`remark`, colours ignored, each
keyword typed by its name (`thing1`, `time2`, `character_string3`...) with that type's length limit. Values are Jinja
expressions over `follower`, `event` (what triggered the send), `data` (the caller's extra data) and `now` (local
time), rendered in a sandbox with undefined names as errors, so a typo fails the preview instead of sending "".

`kind` says what the message is: `service` (a service notice: confirmations, reminders, follow-up appointments) may
go as a template message; `marketing` may not, and needs `text` for the customer-service or mass channels.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from pydantic import BaseModel, ConfigDict, ValidationError

TEMPLATE, CUSTOM, MASS = "template", "custom", "mass"
CHANNELS = (TEMPLATE, CUSTOM, MASS)
VARIABLES = frozenset({"follower", "event", "data", "now"})
RETIRED = frozenset({"first", "remark"})
# Keyword types of category template messages and how many characters WeChat shows (longer values are refused or
# cut). time/date/const have fixed formats; 20 is the line length WeChat displays.
LIMITS = {
    "thing": 20, "number": 32, "letter": 32, "symbol": 5, "character_string": 32, "time": 20, "date": 20,
    "amount": 14, "phone_number": 17, "car_number": 8, "name": 20, "phrase": 5, "const": 20, "keyword": 20,
}  # fmt: skip
FIELD_NAME = re.compile(r"^(%s)(\d+)$" % "|".join(sorted(LIMITS, key=len, reverse=True)))  # noqa: UP031
FORMATS = {"number": re.compile(r"^[-+]?\d+(\.\d+)?$"), "letter": re.compile(r"^[A-Za-z]+$")}
CJK = re.compile(r"[\u3400-\u9fff]")
TEXT_LIMIT = 2048
RESCAN_EVERY = 2.0

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class TemplateError(ValueError):
    """A library entry is invalid (at load) or cannot be rendered for this follower (at send): says which part."""


class _Miniprogram(BaseModel):
    model_config = ConfigDict(extra="forbid")
    appid: str
    pagepath: str = ""


class _FieldValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str
    color: str | None = None


class _File(BaseModel):
    """The YAML document; unknown keys are errors (a typo must not silently drop a field)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["service", "marketing"]
    template_id: str | None = None
    title: str = ""
    description: str = ""
    url: str | None = None
    miniprogram: _Miniprogram | None = None
    color: str | None = None
    fields: dict[str, str | _FieldValue] = {}
    text: str | None = None


@dataclass(frozen=True)
class MessageTemplate:
    """A validated library entry; `channels` lists how it may be sent, the first being its default."""

    name: str
    kind: str
    template_id: str | None
    title: str
    fields: dict[str, str]
    colors: dict[str, str]
    url: str | None
    miniprogram: dict[str, str] | None
    text: str | None
    channels: tuple[str, ...]
    variables: frozenset[str] = frozenset()  # of follower, event, data, now: what its expressions use

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "title": self.title, "template_id": self.template_id,
            "channels": list(self.channels), "fields": self.fields, "url": self.url, "miniprogram": self.miniprogram,
            "text": self.text,
        }  # fmt: skip


def field_limit(name: str) -> tuple[str, int]:
    """The keyword type of a data field and its length limit; TemplateError for names WeChat does not have."""
    if name in RETIRED:
        raise TemplateError(f"field {name!r}: WeChat no longer shows first/remark (May 2023); remove it")
    match = FIELD_NAME.match(name)
    if not match:
        raise TemplateError(f"unknown field {name!r}: fields are named <type><n> (thing1, time2, amount3...)")
    return match.group(1), LIMITS[match.group(1)]


def check_value(name: str, value: str) -> None:
    """Refuse a value WeChat would cut or reject, naming the field, its type and the limit."""
    kind, limit = field_limit(name)
    if kind == "name" and CJK.search(value):
        limit = 10
    if len(value) > limit:
        raise TemplateError(f"field {name!r} is {len(value)} characters; WeChat allows {limit} for {kind} fields")
    if not value.strip():
        raise TemplateError(f"field {name!r} is empty")
    pattern = FORMATS.get(kind)
    if pattern and not pattern.match(value):
        raise TemplateError(f"field {name!r}: {value!r} is not a valid {kind}")


def _compile_check(where: str, source: str) -> set[str]:
    """The names a source uses; TemplateError for a syntax error or a name templates cannot see."""
    try:
        parsed = _env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: Jinja syntax error line {exc.lineno}: {exc.message}") from None
    names = meta.find_undeclared_variables(parsed)
    unknown = names - VARIABLES
    if unknown:
        known = ", ".join(sorted(VARIABLES))
        raise TemplateError(f"{where}: unknown name(s) {', '.join(sorted(unknown))} (use {known})")
    return names


def _is_static(source: str) -> bool:
    return "{{" not in source and "{%" not in source


def _channels(doc: _File) -> tuple[str, ...]:
    channels: list[str] = []
    if doc.fields:
        if not doc.template_id:
            raise TemplateError("template_id is missing (the id from the Official Account's template library)")
        if doc.kind == "service":
            channels.append(TEMPLATE)
    if doc.text:
        channels += [CUSTOM, MASS]
    if not channels:
        if doc.fields and doc.kind == "marketing":
            raise TemplateError("template messages are for service notices only; a marketing message needs `text`")
        raise TemplateError("nothing to send: give `fields` (template message) or `text`")
    return tuple(channels)


def parse(name: str, document: Any) -> MessageTemplate:
    """Validate one library entry; TemplateError lists what is wrong."""
    if not isinstance(document, dict):
        raise TemplateError("a message file is a YAML mapping")
    try:
        doc = _File.model_validate(document)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or '(file)'}: {_pydantic_msg(e)}" for e in exc.errors()]
        raise TemplateError("; ".join(problems)) from None
    fields = {k: v if isinstance(v, str) else v.value for k, v in doc.fields.items()}
    colors = {k: v.color for k, v in doc.fields.items() if not isinstance(v, str) and v.color}
    names: set[str] = set()
    for key, source in fields.items():
        field_limit(key)
        names |= _compile_check(f"fields.{key}", source)
        if _is_static(source):
            check_value(key, source)
    for where, source in (("url", doc.url), ("text", doc.text), ("miniprogram.pagepath", _pagepath(doc))):
        if source:
            names |= _compile_check(where, source)
    return MessageTemplate(
        name=name, kind=doc.kind, template_id=doc.template_id, title=doc.title, fields=fields, colors=colors,
        url=doc.url, miniprogram=doc.miniprogram.model_dump() if doc.miniprogram else None, text=doc.text,
        channels=_channels(doc), variables=frozenset(names),
    )  # fmt: skip


def _pagepath(doc: _File) -> str | None:
    return doc.miniprogram.pagepath if doc.miniprogram else None


def _pydantic_msg(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return str(error["msg"])


def load_file(path: Path) -> MessageTemplate:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TemplateError(f"not valid YAML: {exc}") from None
    return parse(path.stem, document)


@dataclass
class Library:
    """Every entry of a directory; a broken file is listed in `errors` and does not hide the others."""

    directory: Path
    entries: dict[str, MessageTemplate] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> MessageTemplate:
        """The entry, or TemplateError saying why there is none."""
        if name in self.entries:
            return self.entries[name]
        if name in self.errors:
            raise TemplateError(f"message template {name!r} is invalid: {self.errors[name]}")
        raise TemplateError(f"no message template {name!r} in {self.directory}")


def _scan(directory: Path) -> Library:
    lib = Library(directory)
    for path in sorted(directory.glob("*.yml")) if directory.is_dir() else []:
        try:
            lib.entries[path.stem] = load_file(path)
        except TemplateError as exc:
            lib.errors[path.stem] = str(exc)
    return lib


_cache: dict[Path, tuple[float, tuple, Library]] = {}


def library(directory: Path) -> Library:
    """The library, re-read when a file changed (checked at most every 2 s: senders call this per message)."""
    now = time.monotonic()
    cached = _cache.get(directory)
    if cached and now - cached[0] < RESCAN_EVERY:
        return cached[2]
    signature = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(directory.glob("*.yml")))
    if cached and cached[1] == signature:
        _cache[directory] = (now, signature, cached[2])
        return cached[2]
    lib = _scan(directory)
    _cache[directory] = (now, signature, lib)
    return lib


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Template:
    """Compiling is most of a render's cost: once per distinct source, not once per message."""
    return _env.from_string(source)


def _render(where: str, source: str, context: dict[str, Any]) -> str:
    try:
        return _compiled(source).render(context).strip()
    except (UndefinedError, SecurityError, TypeError, ValueError, AttributeError) as exc:
        raise TemplateError(f"{where}: {exc}") from None


def render(tpl: MessageTemplate, channel: str, context: dict[str, Any]) -> dict[str, Any]:
    """What a channel sends for this follower: the template-send fields, or {"text": ...}; checked like WeChat."""
    if channel not in tpl.channels:
        raise TemplateError(f"{tpl.name!r} cannot go by {channel!r} (allowed: {', '.join(tpl.channels)})")
    if channel != TEMPLATE:
        text = _render("text", tpl.text or "", context)
        if not text or len(text.encode()) > TEXT_LIMIT:
            raise TemplateError(f"text is {len(text.encode())} bytes; it must be 1-{TEXT_LIMIT}")
        return {"text": text}
    data: dict[str, dict[str, str]] = {}
    for key, source in tpl.fields.items():
        value = _render(f"fields.{key}", source, context)
        check_value(key, value)
        data[key] = {"value": value, **({"color": tpl.colors[key]} if key in tpl.colors else {})}
    payload: dict[str, Any] = {"template_id": tpl.template_id, "data": data}
    if tpl.url:
        payload["url"] = _render("url", tpl.url, context)
        if not payload["url"].startswith(("https://", "http://")):
            raise TemplateError(f"url: {payload['url']!r} is not an http(s) URL")
    if tpl.miniprogram:
        page = _render("miniprogram.pagepath", tpl.miniprogram.get("pagepath", ""), context)
        payload["miniprogram"] = {"appid": tpl.miniprogram["appid"], "pagepath": page}
    return payload


def request_body(openid: str, payload: dict[str, Any], client_msg_id: str | None = None) -> dict[str, Any]:
    """The exact JSON of `message/template/send` for a rendered payload (what the preview shows)."""
    body = {"touser": openid, **payload}
    if client_msg_id:
        body["client_msg_id"] = client_msg_id
    return body
