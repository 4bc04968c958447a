"""The journey half of the playbook grammar: entry, re-entry, goal, exits, and steps (`wait`, `if` with yes/no
branches, `do`). Old journeys (`wait: 1d`, `if` + `do`, `exit_if`) read as before.

`Action` comes from scrm.playbook.grammar, which imports this module first: the step models name it as a forward
reference, resolved there by `resolve(Action)`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PositiveInt, model_validator

from scrm.playbook.grammar_when import Condition, Days, Strict

if TYPE_CHECKING:
    from scrm.playbook.grammar import Action


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(-?\d+)\s*([smhdw])\s*", value)
        if not found:
            raise ValueError("expected a duration like 30m, 12h, 2d, 1w or seconds")
        return int(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[found.group(2)]
    return value


Duration = Annotated[PositiveInt, Field(le=100 * 365 * 86400), BeforeValidator(_seconds)]  # up to 100 years
Offset = Annotated[int, Field(ge=-366 * 86400, le=366 * 86400), BeforeValidator(_seconds)]  # -1d, 2h, 0
LocalTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]  # Asia/Shanghai, HH:MM
# What a wait can wait for, and `happened` can ask about (scrm.journey_events reads them).
EVENT = r"^(form_submitted|message|subscribed|click:\S{1,64}|tag:\S{1,64}|activity:[a-z_]{1,48})$"
Event = Annotated[str, Field(pattern=EVENT)]
EXITS = ("unsubscribed", "opted_out", "handed_over")


class EventTime(Strict):
    """`{event_start: -1d, at: "10:00"}`: relative to the start of the event named in the run's context."""

    event_start: Offset = 0
    at: LocalTime | None = None
    missed: Literal["run", "skip"] = "run"  # skip: when the time had passed as the run got here, skip the next step


class Wait(Strict):
    """Exactly one of: `for` a duration, `until` a local time of day (or a time relative to the run's event),
    `event` (with a `timeout`)."""

    for_: Duration | None = Field(None, alias="for")
    until: LocalTime | EventTime | None = None
    event: Event | None = None
    timeout: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"for": _seconds(value)}  # `wait: 2x` is an error at `wait`, as it always was
        return {"for": value} if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one(self) -> Wait:
        if sum(x is not None for x in (self.for_, self.until, self.event)) != 1:
            raise ValueError("a wait has one of: a duration (for), until, event")
        if (self.event is None) != (self.timeout is None):
            raise ValueError("an event wait needs a timeout (and only an event wait takes one)")
        return self


class JourneyCondition(Condition):
    """A step's `if`: every follower condition, plus events since the run started (`happened`, `not_happened`)."""

    happened: list[Event] = []
    not_happened: list[Event] = []

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if k in ("happened", "not_happened") and isinstance(v, str) else v for k, v in value.items()}
        return value


class Step(Strict):
    """`wait`; or `if` with `yes`/`no` branches; or `do` (optionally only `if` a condition holds)."""

    wait: Wait | None = None
    if_: JourneyCondition | None = Field(None, alias="if")
    do: list[Action] = []
    yes: list[Step] | None = None
    no: list[Step] | None = None

    @model_validator(mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        """YAML 1.1 reads the keys `yes:` and `no:` as booleans: give them their names back."""
        if isinstance(value, dict) and (True in value or False in value):
            names = {True: "yes", False: "no"}
            return {names.get(k, k) if isinstance(k, bool) else k: v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one(self) -> Step:
        branches = self.yes is not None or self.no is not None
        if sum((self.wait is not None, bool(self.do), branches)) != 1:
            raise ValueError("a step either waits or does something (do), or branches (if with yes/no)")
        if self.wait is not None and self.if_ is not None:
            raise ValueError("a wait step takes no condition")
        if branches and self.if_ is None:
            raise ValueError("yes/no branches need an if")
        return self


class Entry(Strict):
    """Besides rules' `start_journey`: members entering a saved segment (checked by the scheduler)."""

    segment: str = Field(min_length=1, max_length=128)


class Reentry(Strict):
    days: Days


class Journey(Strict):
    description: str = ""
    entry: Entry | None = None
    reentry: Literal["once", "always"] | Reentry = "always"
    goal: Condition | None = None  # reached: the run ends early, converted
    exit_if: Condition | None = None
    exit_on: list[Literal["unsubscribed", "opted_out", "handed_over"]] = list(EXITS)
    steps: list[Step] = Field(min_length=1)


def resolve(action: type) -> None:
    """Bind the forward reference to `Action` (called by scrm.playbook.grammar once it is defined)."""
    Step.model_rebuild(_types_namespace={"Action": action, "Step": Step})
    Journey.model_rebuild(_types_namespace={"Action": action, "Step": Step})
