"""The playbook grammar as pydantic models: what a marketer may write, and nothing else (unknown keys are errors).

Triggers and actions are one-key mappings (`when: {click: MENU_PRICE}`, `- tag: vip`), so each model below has one
optional field per kind and a before-validator that normalises shorthand and insists on exactly one kind. That keeps
pydantic's error locations equal to the YAML path (`rules[3].do[1].score: expected integer`). Cross-references
(models, stages, journeys, placeholders) are checked afterwards by `scrm.playbook.validate`. The `when` half
(triggers, conditions) and the shared field types are in `scrm.playbook.grammar_when`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    StrictBool,
    StrictInt,
    model_validator,
)

from scrm.playbook.grammar_chatbot import ChatbotSettings
from scrm.playbook.grammar_journey import Journey, resolve
from scrm.playbook.grammar_journey import Step as Step  # re-exported
from scrm.playbook.grammar_when import (
    LIMIT,
    Condition,
    Count,
    Names,
    Number,
    Patterns,
    RuleName,
    Slug,
    Strict,
    Text,
    Trigger,
    one_key,
)

# --- actions ----------------------------------------------------------------------------------------------------


class Cap(Strict):
    """How often a rule may score a follower: `once`, `daily`, or {per_day: N, total: N points}."""

    once: StrictBool = False
    per_day: Count | None = None
    total: Count | None = None

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
    kind: Literal["rule", "handoff"] = "rule"  # handoff: the lead asked for a human (scrm.notices)


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
    score: Annotated[StrictInt, Field(ge=-LIMIT, le=LIMIT)] | None = None
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


resolve(Action)  # journey steps name Action (scrm.playbook.grammar_journey)


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
    # Who owns a lead a later code brings in: the first rep keeps it, or the latest code's rep (scrm.assign_effects).
    assignment: Literal["first_touch", "last_touch"] = "first_touch"
    chatbot: ChatbotSettings = Field(default_factory=ChatbotSettings)  # handoff/cancel words, lines (docs/chatbot.md)
    rules: list[Rule] = []
    journeys: dict[Slug, Journey] = {}

    @property
    def primary_model(self) -> str:
        """The model stages use, and the default for score actions and conditions."""
        return self.stages.model or next(iter(self.models))
