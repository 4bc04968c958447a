"""The playbook grammar as pydantic models: what a marketer may write, and nothing else (unknown keys are errors).

Triggers and actions are one-key mappings (`when: {click: MENU_PRICE}`, `- tag: vip`), so each model below has one
optional field per kind and a before-validator that normalises shorthand and insists on exactly one kind. That keeps
pydantic's error locations equal to the YAML path (`rules[3].do[1].score: expected integer`). Cross-references
(models, stages, journeys, placeholders) are checked afterwards by `scrm.playbook.validate`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from scrm.scenes import PatternError, compile_pattern


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


def _as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected number")
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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def one_key(kinds: dict[str, str | None], what: str, value: Any, options: frozenset[str] = frozenset()) -> Any:
    """Normalise `{kind: shorthand}` to `{kind: {main_field: shorthand}}` and reject zero or several kinds."""
    if isinstance(value, str) and value in kinds:
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


# --- triggers ---------------------------------------------------------------------------------------------------


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
                re.compile(value)
            except re.error as exc:
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
    days: PositiveInt


class OnForm(Strict):
    form: Patterns | None = None


class OnCheckin(Strict):
    event: Patterns | None = None


class OnStatus(Strict):
    status: Patterns | None = None


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
    "contact_added": "scene",
    "contact_removed": None,
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
    contact_added: OnScene | None = None
    contact_removed: Nothing | None = None
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


# --- conditions -------------------------------------------------------------------------------------------------


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


# --- actions ----------------------------------------------------------------------------------------------------


class Cap(Strict):
    """How often a rule may score a follower: `once`, `daily`, or {per_day: N, total: N points}."""

    once: StrictBool = False
    per_day: PositiveInt | None = None
    total: PositiveInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value == "once":
            return {"once": True}
        if value == "daily":
            return {"per_day": 1}
        if isinstance(value, str):
            raise ValueError("expected once, daily or {per_day: N, total: N}")
        return value

    @model_validator(mode="after")
    def _something(self) -> Cap:
        if not (self.once or self.per_day or self.total):
            raise ValueError("a cap needs once, per_day or total")
        return self


class Article(Strict):
    title: Text = Field(min_length=1)
    description: Text = ""
    url: str = ""
    image: str = ""


class Reply(Strict):
    text: Text | None = None
    articles: list[Article] | None = Field(None, min_length=1, max_length=8)

    @model_validator(mode="after")
    def _one(self) -> Reply:
        if (self.text is None) == (self.articles is None):
            raise ValueError("a reply has text or articles (one of them)")
        return self


class TemplateSend(Strict):
    template: str = Field(min_length=1, max_length=64)
    data: dict[str, Text] = {}
    url: str | None = None


class Notify(Strict):
    reason: Text = ""


ACTION_MAIN: dict[str, str | None] = {
    "tag": None,
    "untag": None,
    "score": None,
    "stage": None,
    "assign": None,
    "reply": "text",
    "send_template": "template",
    "notify_owner": "reason",
    "start_journey": None,
}
ACTION_OPTIONS = {"model": "score", "cap": "score", "overwrite": "assign"}


class Action(Strict):
    """One item of `do`: exactly one verb, plus the options that belong to it."""

    tag: Names | None = None
    untag: Names | None = None
    score: StrictInt | None = None
    model: str | None = None
    cap: Cap | None = None
    stage: str | None = None
    assign: Text | None = None
    overwrite: StrictBool = False
    reply: Reply | None = None
    send_template: TemplateSend | None = None
    notify_owner: Notify | None = None
    start_journey: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("notify_owner", "") is True:
            value = {**value, "notify_owner": None}
        value = one_key(ACTION_MAIN, "action", value, frozenset(ACTION_OPTIONS))
        if isinstance(value, dict):
            verb = next(k for k in value if k in ACTION_MAIN)
            for option in value:
                if option in ACTION_OPTIONS and ACTION_OPTIONS[option] != verb:
                    raise ValueError(f"option {option!r} belongs to {ACTION_OPTIONS[option]}, not {verb}")
        return value

    @property
    def verb(self) -> str:
        return next(k for k in ACTION_MAIN if getattr(self, k) is not None)


# --- rules, journeys, the playbook ------------------------------------------------------------------------------


class Rule(Strict):
    name: RuleName
    description: str = ""
    enabled: StrictBool = True
    when: Trigger
    if_: Condition | None = Field(None, alias="if")
    do: list[Action] = Field(min_length=1)


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", value)
        if not found:
            raise ValueError("expected a duration like 30m, 12h, 2d, 1w or seconds")
        return int(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[found.group(2)]
    return value


Duration = Annotated[PositiveInt, BeforeValidator(_seconds)]


class Step(Strict):
    """A journey step: wait, or (optionally only if a condition holds) do actions."""

    wait: Duration | None = None
    if_: Condition | None = Field(None, alias="if")
    do: list[Action] = []

    @model_validator(mode="after")
    def _one(self) -> Step:
        if (self.wait is None) == (not self.do):
            raise ValueError("a step either waits or does something")
        if self.wait is not None and self.if_ is not None:
            raise ValueError("a wait step takes no condition")
        return self


class Journey(Strict):
    description: str = ""
    exit_if: Condition | None = None
    steps: list[Step] = Field(min_length=1)


class ScoringModel(Strict):
    description: str = ""
    half_life_days: PositiveFloat | None = None
    rearm_margin: NonNegativeFloat = 5.0


def _stage_item(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class StageSpec(Strict):
    name: Slug
    at: Number | None = None


DEFAULT_STAGES = [
    {"name": "new", "at": 0},
    {"name": "engaged", "at": 10},
    {"name": "mql", "at": 40},
    {"name": "sql", "at": 80},
    {"name": "customer"},
]


class Stages(Strict):
    model: str | None = None
    margin: NonNegativeFloat = 5.0
    demote: StrictBool = False
    order: list[Annotated[StageSpec, BeforeValidator(_stage_item)]] = Field(
        default_factory=lambda: [StageSpec(**s) for s in DEFAULT_STAGES], min_length=1
    )


class WeChatTags(Strict):
    sync: StrictBool = False
    include: Patterns = ["*"]


class Playbook(Strict):
    name: str = Field("playbook", min_length=1, max_length=128)
    description: str = ""
    models: dict[Slug, ScoringModel] = Field(
        default_factory=lambda: {"engagement": ScoringModel(half_life_days=30)}, min_length=1
    )
    stages: Stages = Field(default_factory=Stages)
    wechat_tags: WeChatTags = Field(default_factory=WeChatTags)
    rules: list[Rule] = []
    journeys: dict[Slug, Journey] = {}

    @property
    def primary_model(self) -> str:
        """The model stages use, and the default for score actions and conditions."""
        return self.stages.model or next(iter(self.models))
