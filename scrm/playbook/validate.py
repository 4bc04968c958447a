"""YAML text → a validated `Playbook`, or every problem at once, each naming its path and rule.

Two passes: pydantic checks shapes and types; `_references` then checks what pydantic cannot see (models, stages,
journeys and placeholders that must exist, thresholds in order, replies only where a reply is possible). When the
shapes are wrong somewhere, the second pass still runs over every section and rule that is well-formed on its own
(`_salvage`), so a file's problems all show up in one go, not one pass at a time.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from scrm.linear_regex import compile_regex
from scrm.playbook import source
from scrm.playbook.grammar import Action, Condition, Journey, Playbook, Rule, Stages
from scrm.scenes import compile_pattern


class PlaybookError(ValueError):
    """The playbook is invalid; `errors` lists every problem as `path: message`."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid playbook:\n  " + "\n  ".join(errors))
        self.errors = errors


SHORT = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "int_type": "expected integer",
    "int_parsing": "expected integer",
    "int_from_float": "expected integer",
    "float_type": "expected number",
    "float_parsing": "expected number",
    "finite_number": "expected a finite number",
    "string_type": "expected text",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}


def parse(text: str) -> Playbook:
    """Validate YAML (or JSON) text; raises PlaybookError. Bounded before anything is built (scrm.playbook.source)."""
    try:
        data = source.load(text)
    except source.SourceError as exc:
        raise PlaybookError([str(exc)]) from None
    return validate(data)


def validate(data: Any) -> Playbook:
    """A validated Playbook, or PlaybookError with every problem: shapes and references together."""
    if not isinstance(data, dict):
        raise PlaybookError(["(top): expected a mapping with rules, models, stages..."])
    try:
        book = Playbook.model_validate(data)
    except ValidationError as exc:
        shapes = [_describe(err, data) for err in exc.errors()]
        raise PlaybookError(shapes + list(_references(_salvage(data)))) from None
    problems = list(_references(Parts.of(book)))
    if problems:
        raise PlaybookError(problems)
    return book


@dataclass
class Parts:
    """What the reference checks look at. A name set is None when its section is malformed: not checked then."""

    models: set[str] | None
    stages: list[str] | None
    journey_names: set[str] | None
    stage_spec: Stages | None = None
    rules: list[tuple[int, Rule]] = field(default_factory=list)
    journeys: dict[str, Journey] = field(default_factory=dict)

    @classmethod
    def of(cls, book: Playbook) -> Parts:
        stages = [s.name for s in book.stages.order]
        return cls(set(book.models), stages, set(book.journeys), book.stages, list(enumerate(book.rules)),
                   dict(book.journeys))  # fmt: skip


def _salvage(data: dict[str, Any]) -> Parts:
    """The well-formed parts of a playbook that failed its shape check, each validated on its own."""
    default = Playbook()
    models = data.get("models", default.models)
    stage_spec = _valid(Stages, data.get("stages", {}))
    raw_journeys = data.get("journeys", {})
    parts = Parts(
        models=set(models) if isinstance(models, dict) else None,
        stages=[s.name for s in stage_spec.order] if stage_spec else _stage_names(data.get("stages")),
        journey_names=set(raw_journeys) if isinstance(raw_journeys, dict) else None,
        stage_spec=stage_spec,
    )
    rules = data.get("rules", [])
    for i, raw in enumerate(rules if isinstance(rules, list) else []):
        rule = _valid(Rule, raw)
        if rule is not None:
            parts.rules.append((i, rule))
    for name, raw in (raw_journeys if isinstance(raw_journeys, dict) else {}).items():
        journey = _valid(Journey, raw)
        if journey is not None:
            parts.journeys[str(name)] = journey
    return parts


def _valid(model: Any, raw: Any) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _stage_names(raw: Any) -> list[str] | None:
    """Stage names from a malformed `stages` section, when its order still names them all."""
    order = raw.get("order") if isinstance(raw, dict) else None
    if not isinstance(order, list):
        return None
    names = [item if isinstance(item, str) else item.get("name") if isinstance(item, dict) else None for item in order]
    return names if all(isinstance(n, str) for n in names) else None


def path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _describe(err: Any, data: dict[str, Any]) -> str:
    kind, loc = err["type"], tuple(err["loc"])
    message = SHORT.get(kind) or str(err["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        message = f"expected {err['ctx']['expected']}"
    elif kind in ("too_short", "too_long") and isinstance(err.get("input"), list):
        bound = err["ctx"].get("min_length", err["ctx"].get("max_length"))
        message = f"{'at least' if kind == 'too_short' else 'at most'} {bound} item(s)"
    return f"{path(loc)}: {message}{_rule_hint(loc, data)}"


def _rule_hint(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """Name the rule too, when the error is inside one that has a name."""
    if len(loc) < 2 or loc[0] != "rules" or not isinstance(loc[1], int):
        return ""
    rules = data.get("rules")
    rule = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
    name = rule.get("name") if isinstance(rule, dict) else None
    return f" (rule {name!r})" if isinstance(name, str) and loc[2:] != ("name",) else ""


# --- references -------------------------------------------------------------------------------------------------


def _unknown(value: str | None, names: set[str] | list[str] | None) -> bool:
    """True when `value` is given and the section it refers to is known and lacks it."""
    return value is not None and names is not None and value not in names


def _references(parts: Parts) -> Iterator[str]:
    yield from _stage_order(parts.stage_spec)
    if parts.stage_spec is not None and _unknown(parts.stage_spec.model, parts.models):
        yield f"stages.model: unknown model {parts.stage_spec.model!r}"
    seen: dict[str, int] = {}
    for i, rule in parts.rules:
        where = f"rules[{i}]"
        hint = f" (rule {rule.name!r})"
        if rule.name in seen:
            yield f"{where}.name: duplicate rule name {rule.name!r} (also rules[{seen[rule.name]}])"
        seen.setdefault(rule.name, i)
        for problem in _rule(parts, rule, where):
            yield problem + hint
    for name, journey in parts.journeys.items():
        yield from _journey(parts, journey, f"journeys.{name}")


JOURNEY_VALUES = {"openid", "event", "booth", "form", "event_name", "event_starts_at"}  # scrm.journey_stepper


def _journey(parts: Parts, journey: Journey, where: str) -> Iterator[str]:
    for name in ("goal", "exit_if"):
        if getattr(journey, name) is not None:
            yield from _condition(parts, getattr(journey, name), f"{where}.{name}")
    yield from _steps(parts, journey.steps, f"{where}.steps")


def _steps(parts: Parts, steps: list[Any], where: str) -> Iterator[str]:
    """Journey steps, branches included (yes/no lists are steps too)."""
    for j, step in enumerate(steps):
        if step.if_ is not None:
            yield from _condition(parts, step.if_, f"{where}[{j}].if")
        for k, action in enumerate(step.do):
            at = f"{where}[{j}].do[{k}]"
            if action.verb == "reply":
                yield f"{at}.reply: a journey step cannot reply (there is no message to answer); send a template"
            yield from _action(parts, action, at, JOURNEY_VALUES)
        for way in ("yes", "no"):
            yield from _steps(parts, getattr(step, way) or [], f"{where}[{j}].{way}")


def _stage_order(spec: Stages | None) -> Iterator[str]:
    names: set[str] = set()
    last: float | None = None
    for i, stage in enumerate(spec.order if spec else []):
        if stage.name in names:
            yield f"stages.order[{i}].name: duplicate stage {stage.name!r}"
        names.add(stage.name)
        if stage.at is not None:
            if last is not None and stage.at < last:
                yield f"stages.order[{i}].at: thresholds must not decrease along the order ({stage.at} < {last})"
            last = stage.at


def _rule(parts: Parts, rule: Rule, where: str) -> Iterator[str]:
    kind, spec = rule.when.kind, rule.when.spec
    if kind == "score_crossed" and _unknown(spec.model, parts.models):
        yield f"{where}.when.score_crossed.model: unknown model {spec.model!r}"
    if kind == "stage_changed":
        for name in ("to", "from_"):
            value = getattr(spec, name)
            if _unknown(value, parts.stages):
                yield f"{where}.when.stage_changed.{name.rstrip('_')}: unknown stage {value!r}"
    if rule.if_ is not None:
        yield from _condition(parts, rule.if_, f"{where}.if")
    bound = bindings(rule)
    for k, action in enumerate(rule.do):
        at = f"{where}.do[{k}]"
        if action.verb == "reply" and kind in QUIET_TRIGGERS:
            yield f"{at}.reply: {kind} rules run without a message to answer; send a template instead"
        elif action.verb == "reply" and kind in DERIVED_TRIGGERS:
            yield (
                f"{at}.reply: the passive reply is decided when the message arrives, before {kind} can happen; "
                "reply from the rule of the inbound event, or send a template"
            )
        yield from _action(parts, action, at, bound)


def _condition(parts: Parts, cond: Condition, where: str) -> Iterator[str]:
    for name in ("stage_at_least", "stage_below"):
        value = getattr(cond, name)
        if _unknown(value, parts.stages):
            yield f"{where}.{name}: unknown stage {value!r}"
    for i, value in enumerate(cond.stage):
        if _unknown(value, parts.stages):
            yield f"{where}.stage[{i}]: unknown stage {value!r}"
    if cond.score is not None and _unknown(cond.score.model, parts.models):
        yield f"{where}.score.model: unknown model {cond.score.model!r}"


def _action(parts: Parts, action: Action, where: str, bound: set[str]) -> Iterator[str]:
    verb, models, stages = action.verb, parts.models, parts.stages
    if verb == "score" and _unknown(action.model, models):
        yield f"{where}.model: unknown model {action.model!r} (models: {', '.join(sorted(models or []))})"
    if verb == "stage" and _unknown(action.stage, stages):
        yield f"{where}.stage: unknown stage {action.stage!r} (stages: {', '.join(stages or [])})"
    if verb == "start_journey" and _unknown(action.start_journey, parts.journey_names):
        yield f"{where}.start_journey: unknown journey {action.start_journey!r}"
    for name, text in templated(action):
        for problem in placeholder_problems(text, bound):
            yield f"{where}.{name}: {problem}"


def templated(action: Action) -> Iterator[tuple[str, str]]:
    """(path, text) of every string in an action that may hold {placeholders}."""
    verb = action.verb
    if verb in ("tag", "untag"):
        for i, name in enumerate(getattr(action, verb)):
            yield f"{verb}[{i}]", name
    elif verb == "assign":
        yield "assign", action.assign or ""
    elif verb == "reply" and action.reply is not None:
        if action.reply.text is not None:
            yield "reply.text", action.reply.text
        for i, art in enumerate(action.reply.articles or []):
            for field in ("title", "description", "url"):
                yield f"reply.articles[{i}].{field}", getattr(art, field)
    elif verb == "send_template" and action.send_template is not None:
        for key, value in action.send_template.data.items():
            yield f"send_template.data.{key}", value
        if action.send_template.url:
            yield "send_template.url", action.send_template.url
    elif verb == "notify_owner" and action.notify_owner is not None:
        yield "notify_owner.reason", action.notify_owner.reason


def placeholder_problems(text: str, bound: set[str]) -> Iterator[str]:
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        yield f"bad placeholder ({exc}); write {{{{ and }}}} for literal braces"
        return
    for name, spec, conv in fields:
        if not name.isidentifier() or spec or conv:
            yield f"bad placeholder {{{name}}}: only plain names are allowed"
        elif name not in bound:
            yield f"unknown placeholder {{{name}}} (this trigger provides: {', '.join(sorted(bound))})"


QUIET_TRIGGERS = frozenset({"inactive"})
# Signals that effects raise while the applier runs, after the follower was answered.
DERIVED_TRIGGERS = frozenset({"tag_added", "tag_removed", "stage_changed", "score_crossed", "form_submitted",
                              "checked_in", "faq_answered"})  # fmt: skip
FACTS = {
    "subscribe": {"scene"},
    "scan": {"scene"},
    "scene": {"scene"},
    "contact_added": {"scene"},
    "click": {"key"},
    "view": {"url"},
    "text": {"text"},
    "location": {"latitude", "longitude"},
    "template_delivered": {"status"},
    "template_failed": {"status"},
    "tag_added": {"tag"},
    "tag_removed": {"tag"},
    "stage_changed": {"stage", "from"},
    "score_crossed": {"model", "threshold", "score"},
    "inactive": {"days"},
    "form_submitted": {"form"},
    "checked_in": {"event", "booth"},
    "faq_answered": {"entry", "score"},
    "any": {"kind"},
}
PATTERN_FIELD = {
    "subscribe": "scene",
    "scan": "scene",
    "scene": "scene",
    "contact_added": "scene",
    "click": "key",
    "view": "url",
    "tag_added": "tag",
    "tag_removed": "tag",
    "form_submitted": "form",
    "checked_in": "event",
    "faq_answered": "entry",
}


def bindings(rule: Rule) -> set[str]:
    """Placeholder names a rule's actions may use: `openid`, the trigger's facts, and what its patterns bind.

    With several patterns, only names bound by every one of them are safe to use.
    """
    kind, spec = rule.when.kind, rule.when.spec
    names = {"openid"} | FACTS.get(kind, set())
    field = PATTERN_FIELD.get(kind)
    patterns = getattr(spec, field, None) if field else None
    if patterns:
        sets = [set(compile_pattern(p).names) for p in patterns]
        names |= set.intersection(*sets)
    if kind == "text" and spec.regex:
        names |= set(compile_regex(spec.regex).groupindex)
    return names
