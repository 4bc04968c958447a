"""The `when` half of the playbook grammar (triggers, conditions), and the field types both halves share.

See scrm.playbook.grammar for the rest (actions, rules, journeys, stages, the playbook itself).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveInt,
    StrictBool,
    field_validator,
    model_validator,
)

from scrm.linear_regex import RegexError, compile_regex
from scrm.scenes import PatternError, compile_pattern


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


def _as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


LIMIT = 10**9  # counts, points and thresholds beyond this are typos, and would overflow a database integer


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected number")
    if not math.isfinite(value):  # YAML .nan / .inf: nothing compares sensibly with them, and JSON cannot hold them
        raise ValueError("expected a finite number")
    if abs(value) > LIMIT:
        raise ValueError(f"expected a number between -{LIMIT:,} and {LIMIT:,}")
    return value


def _check_patterns(values: list[str]) -> list[str]:
    for text in values:
        try:
            compile_pattern(text)
        except PatternError as exc:
            raise ValueError(str(exc)) from None
    return values


Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,31}$")]


RuleName = Annotated[str, Field(pattern=r"^\w[\w .:/()-]{0,99}$")]


Text = Annotated[str, BeforeValidator(_as_text)]


Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], BeforeValidator(_as_list)]


Patterns = Annotated[
    list[Annotated[str, Field(min_length=1)]], BeforeValidator(_as_list), AfterValidator(_check_patterns)
]


Number = Annotated[float, BeforeValidator(_number)]  # one type (not a union), so errors keep a plain path
Count = Annotated[PositiveInt, Field(le=LIMIT)]
Days = Annotated[PositiveInt, Field(le=36_500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


def one_key(kinds: dict[str, str | None], what: str, value: Any, options: frozenset[str] = frozenset()) -> Any:
    """Normalise `{kind: shorthand}` to `{kind: {main_field: shorthand}}` and reject zero or several kinds."""
    if isinstance(value, str):
        if value not in kinds:  # `when: unsubscrib`: name the typo, as the long form does, not "expected a mapping"
            raise ValueError(f"unknown {what} {value!r} (expected one of: {', '.join(kinds)})")
        value = {value: None}
    if not isinstance(value, dict):
        return value
    given = [k for k in value if k in kinds]
    unknown = [k for k in value if k not in kinds and k not in options]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r} (expected one of: {', '.join(kinds)})")
    if len(given) != 1:
        raise ValueError(f"expected exactly one {what}, got {', '.join(given) or 'none'}")
    kind = given[0]
    main, body = kinds[kind], value[kind]
    if body is None:
        body = {}
    elif main is not None and not isinstance(body, dict):
        body = {main: body}
    return {**value, kind: body}


class OnScene(Strict):
    scene: Patterns | None = None


class OnSceneRequired(Strict):
    scene: Patterns


class OnKey(Strict):
    key: Patterns


class OnUrl(Strict):
    url: Patterns


class OnText(Strict):
    keywords: Patterns = []
    regex: str | None = None
    exact: StrictBool = False
    ignore_case: StrictBool = True

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_regex(value)
            except RegexError as exc:
                raise ValueError(f"bad regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _something(self) -> OnText:
        if not self.keywords and self.regex is None:
            raise ValueError("give keywords or a regex")
        return self


class OnTag(Strict):
    tag: Patterns


class OnStage(Strict):
    to: str | None = None
    from_: str | None = Field(None, alias="from")
    direction: Literal["up", "down", "any"] = "up"


class OnScore(Strict):
    threshold: Number
    model: str | None = None
    margin: NonNegativeFloat | None = None


class OnQuiet(Strict):
    days: Days


class OnForm(Strict):
    form: Patterns | None = None


class OnFaq(Strict):
    entry: Patterns | None = None  # FAQ entry ids (scene-style patterns: `price`, `price*`)


class OnCheckin(Strict):
    event: Patterns | None = None


class OnStatus(Strict):
    status: Patterns | None = None


class OnLink(Strict):
    """`link_clicked`: by the link's name, its campaign or its target URL (scene-style patterns; all given must
    match)."""

    link: Patterns | None = None
    campaign: Patterns | None = None
    url: Patterns | None = None


class Nothing(Strict):
    pass


TRIGGER_MAIN: dict[str, str | None] = {
    "subscribe": "scene",
    "scan": "scene",
    "scene": "scene",
    "unsubscribe": None,
    "click": "key",
    "view": "url",
    "text": "keywords",
    "location": None,
    "template_delivered": "status",
    "template_failed": "status",
    "tag_added": "tag",
    "tag_removed": "tag",
    "stage_changed": "to",
    "score_crossed": "threshold",
    "inactive": "days",
    "form_submitted": "form",
    "checked_in": "event",
    "faq_answered": "entry",
    "contact_added": "scene",
    "contact_removed": None,
    "link_clicked": "link",
    "any": None,
}


class Trigger(Strict):
    """`when`: exactly one event kind and its matchers."""

    subscribe: OnScene | None = None
    scan: OnScene | None = None
    scene: OnSceneRequired | None = None
    unsubscribe: Nothing | None = None
    click: OnKey | None = None
    view: OnUrl | None = None
    text: OnText | None = None
    location: Nothing | None = None
    template_delivered: OnStatus | None = None
    template_failed: OnStatus | None = None
    tag_added: OnTag | None = None
    tag_removed: OnTag | None = None
    stage_changed: OnStage | None = None
    score_crossed: OnScore | None = None
    inactive: OnQuiet | None = None
    form_submitted: OnForm | None = None
    checked_in: OnCheckin | None = None
    faq_answered: OnFaq | None = None
    contact_added: OnScene | None = None
    contact_removed: Nothing | None = None
    link_clicked: OnLink | None = None
    any: Nothing | None = None

    @model_validator(mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return one_key(TRIGGER_MAIN, "trigger", value)

    @property
    def kind(self) -> str:
        return next(k for k in TRIGGER_MAIN if getattr(self, k) is not None)

    @property
    def spec(self) -> Strict:
        return getattr(self, self.kind)


class ScoreRange(Strict):
    model: str | None = None
    min: Number | None = None
    max: Number | None = None


class Condition(Strict):
    """`if`: every condition given must hold (tags are names or patterns)."""

    tagged: Patterns = []
    any_tagged: Patterns = []
    not_tagged: Patterns = []
    stage: Names = []
    stage_at_least: str | None = None
    stage_below: str | None = None
    score: ScoreRange | None = None
    subscribed: StrictBool | None = None
    owned: StrictBool | None = None
