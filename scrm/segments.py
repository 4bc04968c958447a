"""Segments: a filter language over followers, compiled to one SQL condition (set-based, never a Python loop over
followers), counted, paged by keyset and streamed. docs/segments.md describes the language.

Each filter becomes `followers.id IN (subquery)` driven by an index (tag → followers, model + value → followers,
kind + time → interactions) or a plain predicate on an indexed follower column, so the database intersects small
sets instead of probing every follower. Decayed scores are computed in SQL from `follower_scores` (one row per
follower and model); for a lower bound the stored value is a sound pre-filter, since decay only shrinks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from foundation import safe_json
from foundation.clock import utcnow
from foundation.numbers import MAX_INT, span
from scrm import followers, score_totals
from scrm.followers import iso, stage_model, tag_names
from scrm.models import Follower, FollowerTag, Interaction, Tag
from scrm.playbook import store
from scrm.playbook.grammar import DEFAULT_STAGES
from scrm.playbook.models import FollowerScore
from scrm.playbook.validate import path
from scrm.scenes import PatternError, sql_match


class SegmentError(ValueError):
    """A filter that cannot be understood; the message names the key at fault."""


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]], BeforeValidator(_as_list)]
When = Annotated[str, Field(pattern=r"^(\d+[dhm]|\d{4}-\d{2}-\d{2}([T ][\d:.]+Z?)?)$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN compares false with anything


class Range(Strict):
    min: float | None = None
    max: float | None = None


class Did(Strict):
    """Followers with an interaction of `kind` (click, scan, text...), optionally with this event key, since when."""

    kind: str = Field(min_length=1, max_length=48)
    key: str | None = None
    since: When | None = None


class Filter(Strict):
    """Every key given must hold (AND); lists inside a key are alternatives where the name says so."""

    tags_all: Names = []
    tags_any: Names = []
    tags_none: Names = []
    score: dict[str, Range] = {}
    stage: Names = []
    owner: Annotated[StrictInt, Field(ge=0, le=MAX_INT)] | Literal["none", "any"] | None = None
    source: str | None = None
    source_prefix: str | None = None
    subscribed: StrictBool | None = None
    active_after: When | None = None
    active_before: When | None = None
    checked_in: str | None = None
    did: Did | None = None
    openids: Names = []
    # Aliases kept for scrm.audience's original broadcast filters: `all: true` and `tag` (any of).
    all: Literal[True] | None = None
    tag: Names = []


def parse_filter(spec: Any) -> Filter:
    """Validate a filter mapping (JSON body, saved segment); SegmentError lists each problem with its path."""
    if isinstance(spec, Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise SegmentError("a segment filter is a mapping (see docs/segments.md)")
    try:
        return Filter.model_validate(dict(spec))
    except ValidationError as exc:
        problems = [f"{path(tuple(e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()]
        raise SegmentError("; ".join(problems)) from None


LIST_KEYS = ("tags_all", "tags_any", "tags_none", "stage", "openids", "tag")


def from_query(args: Mapping[str, Any] | Any) -> Filter:
    """The query-string form: `tags_all=a&tags_all=b&score=engagement:10..50&stage=mql+&did=click:KEY&did_since=7d`.

    `args` is a werkzeug MultiDict (request.args) or a plain mapping of lists.
    """
    get_list = args.getlist if hasattr(args, "getlist") else (lambda k: list(args.get(k, [])))
    spec: dict[str, Any] = {}
    for key in args:
        if key in ("after", "limit"):
            continue
        values = get_list(key)
        if key in LIST_KEYS:
            spec[key] = values
        elif key == "score":
            spec["score"] = dict(_score_arg(v) for v in values)
        elif key in ("did", "did_since"):
            continue
        else:
            spec[key] = _scalar(key, values[-1])
    if "did" in args:
        kind, _, event_key = get_list("did")[-1].partition(":")
        spec["did"] = {"kind": kind, "key": event_key or None, "since": (get_list("did_since") or [None])[-1]}
    return parse_filter(spec)


SYNTAX = """\b
A segment is one of:
  a query string   'tags_all=interest:pricing&stage=mql+&score=engagement:10..'
  a JSON filter    '{"tags_any": ["vip"], "checked_in": "expo2026"}'
  a saved segment  its name or id ('hot vips', 7)
Keys: tags_all tags_any tags_none score=model:min..max stage (mql+ = mql and later)
owner source subscribed active_after active_before checked_in did=kind:KEY did_since
openids all (docs/segments.md)."""


def parse_query(text: str) -> dict[str, list[str]]:
    """A query string as written: `&`-separated `key=value`, %-escapes decoded, `+` kept as a plus (`stage=mql+`).

    Form encoding reads `+` as a space, which turned `mql+` into `mql `; filters never need a space written as `+`
    (write `%20`), so both the CLI and the API read `+` literally.
    """
    out: dict[str, list[str]] = {}
    for part in text.lstrip("?").split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        out.setdefault(unquote(key), []).append(unquote(value))
    return out


def parse_text(text: str) -> Filter | str:
    """What a marketer types for a segment: a JSON filter (`{...}`), a query string (has `=`), else a saved name."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return parse_filter(safe_json.loads(text))
        except ValueError as exc:  # malformed, or refused (NaN, 1e999, nested too deep, lone surrogates)
            raise SegmentError(f"not valid JSON: {exc}") from None
    if "=" in text:
        return from_query(parse_query(text))
    if not text:
        raise SegmentError("an empty segment; see docs/segments.md")
    return text


def _scalar(key: str, value: str) -> Any:
    if key == "subscribed" or key == "all":
        if value.lower() not in ("true", "false", "1", "0"):
            raise SegmentError(f"{key}: expected true or false")
        return value.lower() in ("true", "1")
    if key == "owner" and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)  # bounds (and `³`, which isdigit() accepts) are the filter's to refuse
    return value


def _score_arg(value: str) -> tuple[str, dict[str, float | None]]:
    found = re.fullmatch(r"([a-z0-9][a-z0-9_.:-]*):(-?[\d.]*)\.\.(-?[\d.]*)", value)
    if not found:
        raise SegmentError(f"score: expected model:min..max (either end may be empty), got {value!r}")
    model, low, high = found.groups()
    try:
        return model, {"min": float(low) if low else None, "max": float(high) if high else None}
    except ValueError:
        raise SegmentError(f"score: not a number in {value!r}") from None


# --- compiling --------------------------------------------------------------------------------------------------


def _moment(value: str, now: datetime) -> datetime:
    """`30d`, `12h`, `90m` (ago) or an ISO date/time (UTC)."""
    relative = re.fullmatch(r"(\d+)([dhm])", value)
    if relative:
        try:
            return now - span(*relative.groups())
        except ValueError as exc:
            raise SegmentError(f"{exc} (write days, hours or minutes ago: 30d, 12h, 90m)") from None
    try:
        return datetime.fromisoformat(value.rstrip("Z"))
    except ValueError:
        raise SegmentError(f"not a date: {value!r}") from None


def _tag_ids(pattern: str, dialect: str) -> Select[Any]:
    return select(Tag.id).where(sql_match(Tag.name, pattern, dialect))


def _tagged(patterns: list[str], dialect: str) -> ColumnElement[bool]:
    """Followers with any tag matching any of `patterns`, driven by the (tag_id, follower_id) index."""
    ids = [_tag_ids(p, dialect) for p in patterns]
    tag_ids = ids[0] if len(ids) == 1 else ids[0].union(*ids[1:])
    return Follower.id.in_(select(FollowerTag.follower_id).where(FollowerTag.tag_id.in_(tag_ids)))


def _checked_in(pattern: str, dialect: str) -> ColumnElement[bool]:
    """Followers with a check-in (scrm.event_checkins, not a late one) at an event whose slug matches `pattern`."""
    from scrm.event_models import Checkin, Event

    at = select(Event.id).where(sql_match(Event.slug, pattern, dialect))
    return Follower.id.in_(select(Checkin.follower_id).where(Checkin.event_id.in_(at), Checkin.late.is_(False)))


def _scored(model: str, bounds: Range, now: datetime) -> ColumnElement[bool]:
    score = score_totals.decayed_sql(now)
    where: list[ColumnElement[bool]] = [FollowerScore.model == model]
    if bounds.min is not None:
        where.append(score >= bounds.min)
        if bounds.min > 0:  # decay only shrinks a positive value: the stored value is an indexable pre-filter
            where.append(FollowerScore.value >= bounds.min)
    if bounds.max is not None:
        where.append(score <= bounds.max)
    matched = Follower.id.in_(select(FollowerScore.follower_id).where(*where))
    if (bounds.min is None or bounds.min <= 0) and (bounds.max is None or bounds.max >= 0):
        unscored = ~exists().where(FollowerScore.follower_id == Follower.id, FollowerScore.model == model)
        return or_(matched, unscored)
    return matched


def _stages(session: Session, names: list[str]) -> list[str]:
    """Stage names, where `mql+` means mql and every stage after it in the active playbook's order.

    An unknown stage is refused: it would count 0 and look like an answer.
    """
    book = store.active_book(session)
    order = [s.name for s in book.stages.order] if book else [s["name"] for s in DEFAULT_STAGES]
    out: list[str] = []
    for name in names:
        base = name.removesuffix("+")
        if base not in order:
            raise SegmentError(f"stage: unknown stage {base!r} (stages: {', '.join(order)})")
        out += order[order.index(base) :] if name.endswith("+") else [base]
    return out


def _check_models(session: Session, models: list[str]) -> None:
    """Refuse a score model that is neither in the active playbook nor has any stored score (a typo counts 0)."""
    book = store.active_book(session)
    known = list(book.models) if book else ["engagement"]
    for model in models:
        if model in known:
            continue
        stored = session.scalar(select(FollowerScore.follower_id).where(FollowerScore.model == model).limit(1))
        if stored is None:
            raise SegmentError(f"score.{model}: unknown model {model!r} (models: {', '.join(known)})")


def _did(did: Did, now: datetime) -> ColumnElement[bool]:
    where = [Interaction.kind == did.kind]
    if did.since:
        where.append(Interaction.at >= _moment(did.since, now))
    if did.key is not None:
        where.append(Interaction.event_key == did.key)
    return Follower.id.in_(select(Interaction.follower_id).where(*where))


def _owner(owner: int | str) -> ColumnElement[bool]:
    if owner == "none":
        return Follower.owner_id.is_(None)
    if owner == "any":
        return Follower.owner_id.is_not(None)
    return Follower.owner_id == owner


def where(session: Session, spec: Any, now: datetime | None = None) -> ColumnElement[bool]:
    """The filter as one WHERE condition on `followers` (usable in counts, keyset pages and broadcasts). A person
    counts once: identities merged into another follower (scrm.merge) are left out, their primary stands for them."""
    f = parse_filter(spec)
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    try:
        return and_(Follower.merged_into.is_(None), *_conditions(session, f, now, dialect))
    except PatternError as exc:
        raise SegmentError(str(exc)) from None


def _conditions(session: Session, f: Filter, now: datetime, dialect: str) -> Iterator[ColumnElement[bool]]:
    for name in f.tags_all:
        yield _tagged([name], dialect)
    if f.tags_any or f.tag:
        yield _tagged(f.tags_any + f.tag, dialect)
    if f.tags_none:
        yield ~_tagged(f.tags_none, dialect)
    if f.checked_in is not None:
        yield _checked_in(f.checked_in, dialect)
    _check_models(session, list(f.score))
    for model, bounds in f.score.items():
        yield _scored(model, bounds, now)
    if f.stage:
        yield Follower.stage.in_(_stages(session, f.stage))
    if f.owner is not None:
        yield _owner(f.owner)
    if f.source is not None:
        yield sql_match(Follower.source, f.source, dialect)
    if f.source_prefix is not None:
        yield Follower.source.startswith(f.source_prefix, autoescape=True)
    if f.subscribed is not None:
        yield Follower.subscribed.is_(f.subscribed)
    if f.active_after is not None:
        yield Follower.last_active_at >= _moment(f.active_after, now)
    if f.active_before is not None:
        yield Follower.last_active_at < _moment(f.active_before, now)
    if f.did is not None:
        yield _did(f.did, now)
    if f.openids:  # an identity merged into another follower names that person
        named = Follower.__table__.alias("named").c
        yield Follower.id.in_(select(func.coalesce(named.merged_into, named.id)).where(named.openid.in_(f.openids)))


# --- reading ----------------------------------------------------------------------------------------------------


def count(session: Session, spec: Any, *, owner: int | None = None, now: datetime | None = None) -> int:
    query = select(func.count()).select_from(Follower).where(where(session, spec, now))
    if owner is not None:
        query = query.where(Follower.owner_id == owner)
    return int(session.scalar(query) or 0)


def page(
    session: Session,
    spec: Any,
    *,
    after: int = 0,
    limit: int = 50,
    owner: int | None = None,
    now: datetime | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """One keyset page (by follower id) of serialized followers, and the cursor of the next page."""
    return followers.page(session, after, limit, owner, where(session, spec, now))


EXPORT_COLUMNS = (
    "openid", "channel", "subscribed", "stage", "owner", "source", "score", "scores", "tags", "last_active_at",
)  # fmt: skip


def export(session: Session, spec: Any, *, batch: int = 2000, now: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every follower of the segment, streamed with yield_per (server-side cursor on PostgreSQL): memory stays flat.

    `score` and `scores` mean what they mean in the follower JSON: the stage model's score, and every model's.
    """
    now = now or utcnow()
    model = stage_model(session)
    query = (
        select(Follower.id, Follower.openid, Follower.channel, Follower.subscribed, Follower.stage,
               Follower.owner_id, Follower.source, Follower.last_active_at)
        .where(where(session, spec, now))
        .order_by(Follower.id)
        .execution_options(yield_per=batch)
    )  # fmt: skip
    for chunk in session.execute(query).partitions():
        ids = [r.id for r in chunk]
        names, totals = tag_names(session, ids), score_totals.totals(session, ids, now)
        for r in chunk:
            per_model = totals.get(r.id, {})
            yield {
                "openid": r.openid, "channel": r.channel, "subscribed": r.subscribed, "stage": r.stage,
                "owner": r.owner_id, "source": r.source, "score": per_model.get(model, 0.0), "scores": per_model,
                "tags": names.get(r.id, []), "last_active_at": iso(r.last_active_at),
            }  # fmt: skip


# --- saved segments: scrm.saved_segments (re-exported for the callers that name them here) --------------------


def normalised(f: Filter) -> dict[str, Any]:
    return f.model_dump(mode="json", exclude_defaults=True)


from scrm.saved_segments import delete, describe, find, save, saved  # noqa: E402,F401  (needs the names above)
