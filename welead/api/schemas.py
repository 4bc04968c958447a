"""What the admin API answers, as marshmallow schemas: documentation only (views still return plain dicts), checked
against real answers by the schemathesis test (tests/test_openapi.py), so a client generated from the document works.

`required` marks keys always present; `allow_none` the ones that may be null; every answer schema derives from `Out`,
which allows keys it does not list. Add a schema here (or in your module) for a new endpoint and name it in
`answers(...)` (welead/api/access.py); docs/api.md shows how.
"""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Float, Integer, List, Nested, Raw, String
from marshmallow import INCLUDE

MAX_ID = 2**63 - 1  # a BIGINT id
INT4_MAX = 2**31 - 1  # an INTEGER id (PostgreSQL's `integer`): reps, broadcasts, segments, playbook versions
IDS = {"minimum": 0, "maximum": MAX_ID}  # metadata for an id or cursor argument (views check with `bounded`)

# The one error shape (welead.api.json_errors), for APIFlask's HTTP_ERROR_SCHEMA and VALIDATION_ERROR_SCHEMA.
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "the status as a slug: not_found, forbidden, conflict..."},
        "message": {"type": "string", "description": "what went wrong, for a person"},
        "detail": {"description": "structured detail: the fields at fault, a playbook's problems..."},
    },
}


class StrictBoolean(Boolean):
    """A request's boolean: JSON true or false only (marshmallow's Boolean also takes 0, 1, "yes", "on"...)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if type(value) is not bool:
            raise self.make_error("invalid")
        return value


class Out(Schema):
    """An answer's schema: keys added later (by another feature) do not make old clients or checks fail."""

    class Meta:
        unknown = INCLUDE


# A playbook as sent: YAML (JSON is YAML too) holding one mapping; what it may say is docs/playbook.md's grammar.
PLAYBOOK_BODY: dict[str, Any] = {
    "type": "object",
    "description": "name, rules, journeys, stages, scoring... (docs/playbook.md); checked on load (422 lists problems)",
}


def param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    """A query parameter for `query_params`: `param("limit", "1-500", type="integer", minimum=1, maximum=500)`."""
    return {"name": name, "description": description, "schema": schema or {"type": "string"}}


# `after`/`limit` for views that page by follower id themselves (segments).
FOLLOWER_PAGING = (
    param("after", "the `next` cursor of the previous page", type="integer", minimum=0, maximum=MAX_ID, default=0),
    param("limit", "1-500 (400 outside)", type="integer", minimum=1, maximum=500, default=50),
)

# The query-string form of a segment filter (docs/segments.md); every key is optional and they combine with AND.
SEGMENT_FILTER = (
    param("tags_all", "tags the follower has, all of them (repeat the key); `*` is a wildcard"),
    param("tags_any", "tags, at least one of them (repeat the key)"),
    param("tags_none", "tags the follower has none of (repeat the key)"),
    param("score", "`model:min..max`, either bound optional (`engagement:10..`)"),
    param("stage", "a stage, `mql+` for it and the later ones (repeat the key)"),
    param("owner", "a rep id, `none` or `any`"),
    param("source", "the first scene, `*` as a wildcard (`booth:expo:*`)"),
    param("source_prefix", "the first scene starts with this"),
    param("subscribed", "`true` or `false`"),
    param("active_after", "`30d`, `12h`, `90m` ago, or a date"),
    param("active_before", "`30d`, `12h`, `90m` ago, or a date"),
    param("checked_in", "an event slug (`expo2026`)"),
    param("did", "`kind` or `kind:KEY`: had an interaction of that kind (and event key)"),
    param("did_since", "with `did`: since `7d` ago, or a date"),
    param("openids", "these followers (repeat the key)"),
)


def req(field: Any) -> Any:
    """`field`, always present in the answer."""
    field.required = True
    return field


def opt(field_class: Any, *args: Any, **kwargs: Any) -> Any:
    """A key always present whose value may be null."""
    return field_class(*args, required=True, allow_none=True, **kwargs)


class FollowerOut(Out):
    openid = req(String())
    channel = req(String(metadata={"description": "oa, or wecom for a WeCom external contact"}))
    subscribed = req(Boolean())
    tags = req(List(String(), metadata={"description": "tag names"}))
    score = req(Float(metadata={"description": "the stage model's decayed score"}))
    scores = req(Dict(keys=String(), values=Float(), metadata={"description": "every model's decayed score"}))
    stage = req(String())
    owner = opt(Integer, metadata={"description": "the owning rep's id"})
    source = opt(String, metadata={"description": "the first scene"})
    unionid = opt(String)
    profile = req(Dict())
    subscribed_at = opt(DateTime)
    last_active_at = opt(DateTime)
    created_at = opt(DateTime)


class FollowerPage(Out):
    items = req(List(Nested(FollowerOut)))
    next = opt(Integer, metadata={"description": "pass as `after` for the next page; null on the last"})


class TimelineEntry(Out):
    kind = req(String(metadata={"description": "WeChat's name in lower case for inbound interactions"}))
    at = req(DateTime())
    source = req(String(metadata={"description": "wechat (an inbound interaction) or welead (an activity)"}))
    channel = String()
    event_key = String(allow_none=True)
    content = String(allow_none=True)
    msg_id = String(allow_none=True)
    data = Raw(allow_none=True)


class ScoreEvent(Out):
    id = req(Integer())
    model = req(String())
    rule = opt(String)
    interaction_id = opt(Integer)
    interaction_kind = opt(String)
    points = req(Float())
    points_now = req(Float())
    at = req(DateTime())


class ScoreOut(Out):
    openid = req(String())
    stage = req(String())
    at = req(DateTime())
    total = req(Float())
    models = req(Dict(keys=String(), values=Dict(), metadata={"description": "model → score, half_life_days"}))
    events = req(List(Nested(ScoreEvent)))


class PlaybookSummary(Out):
    version = req(Integer())
    name = req(String())
    checksum = req(String())
    created_at = opt(DateTime)
    created_by = opt(String)


class PlaybookOut(PlaybookSummary):
    active = req(Boolean())
    source = req(String(metadata={"description": "the text as loaded"}))
    spec = req(Dict(metadata={"description": "the validated playbook"}))
    unchanged = Boolean(metadata={"description": "after a load: the text was the active version's"})


class PlaybookVersions(Out):
    items = req(List(Nested(PlaybookSummary)))


class PlaybookCheck(Out):
    ok = req(Boolean())
    name = req(String())
    rules = req(Integer())
    journeys = req(Integer())


class SegmentOut(Out):
    id = req(Integer())
    name = req(String())
    filter = req(Dict(metadata={"description": "the normalised filter (docs/segments.md)"}))
    created_at = opt(DateTime)
    created_by = opt(String)
    count = Integer()


class SegmentList(Out):
    items = req(List(Nested(SegmentOut)))


class SegmentResult(Out):
    filter = Dict()
    count = req(Integer())
    items = req(List(Nested(FollowerOut)))
    next = opt(Integer)


class SavedSegmentResult(SegmentOut, SegmentResult):
    pass


class TemplateOut(Out):
    name = req(String())
    kind = req(String())
    title = req(String())
    template_id = opt(String)
    channels = req(List(String()))
    fields = req(Dict(keys=String(), values=String()))
    url = opt(String)
    miniprogram = opt(Dict)
    text = opt(String)


class TemplateList(Out):
    items = req(List(Nested(TemplateOut)))
    errors = req(Dict(keys=String(), values=String(), metadata={"description": "file → why it is invalid"}))


class DeliveryOut(Out):
    id = req(Integer())
    key = req(String())
    openid = req(String())
    channel = req(String())
    template = req(String())
    broadcast = opt(Integer)
    source = req(String())
    state = req(String())
    reason = opt(String)
    detail = opt(String)
    error_code = opt(Integer)
    msgid = opt(String)
    attempts = req(Integer())
    retries = req(Integer())
    payload = opt(Dict)
    send_after = opt(DateTime)
    created_at = opt(DateTime)
    sent_at = opt(DateTime)
    done_at = opt(DateTime)
    updated_at = opt(DateTime)


class DeliveryPage(Out):
    items = req(List(Nested(DeliveryOut)))
    next = opt(Integer, metadata={"description": "pass as `before` for the next page"})


class BroadcastSummary(Out):
    id = req(Integer())
    name = req(String())
    template = req(String())
    channel = req(String())
    state = req(String())
    total = req(Integer())
    created_at = opt(DateTime)


class BroadcastList(Out):
    items = req(List(Nested(BroadcastSummary)))


class BroadcastOut(BroadcastSummary):
    key = opt(String)
    segment = req(Raw())
    data = req(Dict())
    pause_reason = opt(String)
    audience = opt(Integer)
    fanned_out = req(Boolean())
    counts = req(Dict(keys=String(), values=Integer()))
    finished = req(Integer())
    progress = req(Float())
    retries = req(Integer())
    reasons = req(Dict(keys=String(), values=Dict(keys=String(), values=Integer())))
    waiting_until = opt(DateTime)
    error_budget = req(Float())
    breaker_window = req(Integer())
    created_by = opt(String)
    finished_at = opt(DateTime)
    warnings = List(String(), metadata={"description": "after a start: what will not go, and why"})
    clicks = req(Dict(metadata={"description": "click-through: delivered, clickers (once each), clicks, ratio"}))


class FailedInteraction(Out):
    id = req(Integer())
    kind = req(String())
    openid = req(String())
    at = opt(DateTime)
    applied_at = opt(DateTime)
    apply_error = req(String())


class FailedPage(Out):
    items = req(List(Nested(FailedInteraction)))
    next = opt(Integer)


class RetryOut(Out):
    id = req(Integer())
    queued = req(Boolean())


class MessageBody(Out):
    """The exact JSON WeChat would receive (template message, customer-service or mass text)."""
