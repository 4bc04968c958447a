"""A validated playbook compiled for matching: rules indexed by trigger kind, literal keys in dicts, patterns and
regexes compiled once (RE2, scrm.linear_regex: linear in the text, so no message can stall a callback). Built once
per process per playbook checksum (see store.active) and shared read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scrm.linear_regex import compile_regex
from scrm.playbook.grammar import Condition, Playbook, Rule
from scrm.playbook.grammar_when import OnText
from scrm.playbook.validate import DERIVED_TRIGGERS, PATTERN_FIELD, QUIET_TRIGGERS, REPLY_VERBS
from scrm.scenes import compile_pattern
from scrm.scoring import half_life_seconds
from scrm.stages import Stage

Facts = dict[str, Any]
Matcher = Callable[[Facts], dict[str, str] | None]
NOTHING: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Signal:
    """Something that happened to the follower: an inbound event or a change a rule made (tag added...)."""

    kind: str
    facts: Facts = field(default_factory=dict)


@dataclass(slots=True)
class CompiledRule:
    name: str
    order: int
    kind: str
    match: Matcher
    condition: Condition | None
    rule: Rule
    templates: int  # how many send_template actions (their idempotency keys need an index when > 1)
    replies: bool  # has a reply action: decided in the request, so the applier fires it as the request decided


@dataclass(slots=True)
class _Index:
    """Rules of one trigger kind: those keyed by literal values in a dict, the rest scanned in order."""

    field: str | None
    literal: dict[str, list[CompiledRule]] = field(default_factory=dict)
    scan: list[CompiledRule] = field(default_factory=list)

    def candidates(self, facts: Facts) -> list[CompiledRule]:
        if not self.literal:
            return self.scan
        value = facts.get(self.field or "")
        hits = self.literal.get(value, []) if isinstance(value, str) else []
        if not hits:
            return self.scan
        return sorted(hits + self.scan, key=lambda r: r.order)


class Compiled:
    """The active playbook, ready to match signals against."""

    def __init__(self, book: Playbook, checksum: str) -> None:
        self.book, self.checksum = book, checksum
        self.conditional_replies = False  # does any reply rule have an `if`? (then the request reads the follower)
        self.primary = book.primary_model
        self.half_lives = {name: half_life_seconds(m.half_life_days) for name, m in book.models.items()}
        self.stages = [Stage(s.name, float(s.at) if s.at is not None else None) for s in book.stages.order]
        self.thresholds: dict[str, dict[float, float]] = {}
        self.quiet: list[tuple[str, int]] = []  # (rule name, days) of `inactive` rules
        # Rules whose score caps read history: by their unique key (once, daily) or by counting (per_day > 1, total).
        self.keyed_caps: set[str] = set()
        self.counted_caps: set[str] = set()
        self._index: dict[str, _Index] = {}
        for order, rule in enumerate(book.rules):
            if rule.enabled:
                self._add(order, rule)

    def _add(self, order: int, rule: Rule) -> None:
        kind, spec = rule.when.kind, rule.when.spec
        templates = sum(1 for a in rule.do if a.verb == "send_template")
        replies = any(a.verb in REPLY_VERBS for a in rule.do) or _asks_poster(rule)
        compiled = CompiledRule(
            rule.name, order, kind, _matcher(rule, self.primary), rule.if_, rule, templates, replies
        )
        self.conditional_replies |= replies and rule.if_ is not None
        index = self._index.setdefault(kind, _Index(PATTERN_FIELD.get(kind)))
        literal = _literals(rule)
        if literal:
            for value in literal:
                index.literal.setdefault(value, []).append(compiled)
        else:
            index.scan.append(compiled)
        if kind == "score_crossed":
            model = spec.model or self.primary
            margin = spec.margin if spec.margin is not None else self.book.models[model].rearm_margin
            known = self.thresholds.setdefault(model, {})
            known[float(spec.threshold)] = max(margin, known.get(float(spec.threshold), 0.0))
        if kind == "inactive":
            self.quiet.append((rule.name, spec.days))
        file_caps(rule.name, rule.do, self.keyed_caps, self.counted_caps)

    def matches(self, signal: Signal) -> list[tuple[CompiledRule, dict[str, str]]]:
        """Rules whose trigger matches, in playbook order, with what their patterns bound."""
        index = self._index.get(signal.kind)
        if index is None:
            return []
        out = []
        for rule in index.candidates(signal.facts):
            bound = rule.match(signal.facts)
            if bound is not None:
                out.append((rule, bound))
        return out

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


def _asks_poster(rule: Rule) -> bool:
    """A `send_poster` rule of an inbound trigger answers at once ("your poster is on its way"), so it is decided in
    the request like a reply; of a derived or quiet trigger it simply queues the poster in the applier."""
    return rule.when.kind not in DERIVED_TRIGGERS | QUIET_TRIGGERS and any(a.verb == "send_poster" for a in rule.do)


def _literals(rule: Rule) -> list[str] | None:
    """The literal values a rule can be looked up by (all its patterns literal), else None."""
    field_name = PATTERN_FIELD.get(rule.when.kind)
    patterns = getattr(rule.when.spec, field_name, None) if field_name else None
    if not patterns or not all(compile_pattern(p).literal for p in patterns):
        return None
    return list(patterns)


def _patterns(field_name: str, patterns: list[str] | None) -> Matcher:
    if not patterns:
        return lambda facts: NOTHING
    compiled = [compile_pattern(p) for p in patterns]

    def match(facts: Facts) -> dict[str, str] | None:
        value = facts.get(field_name)
        for pattern in compiled:
            bound = pattern.match(value)
            if bound is not None:
                return bound
        return None

    return match


def _every(link: list[str] | None, campaign: list[str] | None, url: list[str] | None) -> Matcher:
    """`link_clicked`: each matcher given must match its fact (name, campaign, URL)."""
    given = [_patterns(name, p) for name, p in (("link", link), ("campaign", campaign), ("url", url)) if p]

    def match(facts: Facts) -> dict[str, str] | None:
        bound: dict[str, str] = {}
        for one in given:
            found = one(facts)
            if found is None:
                return None
            bound.update(found)
        return bound

    return match


def _text(spec: OnText) -> Matcher:
    regex = compile_regex(spec.regex, ignore_case=spec.ignore_case) if spec.regex else None
    words = [w.casefold() if spec.ignore_case else w for w in spec.keywords]

    def match(facts: Facts) -> dict[str, str] | None:
        text = (facts.get("text") or "").strip()
        probe = text.casefold() if spec.ignore_case else text
        if words and (probe in words if spec.exact else any(w in probe for w in words)):
            return NOTHING
        return regex.search(text) if regex else None

    return match


def _matcher(rule: Rule, primary: str) -> Matcher:
    kind, spec = rule.when.kind, rule.when.spec
    if kind == "text":
        return _text(spec)
    if kind == "link_clicked":
        return _every(spec.link, spec.campaign, spec.url)
    if kind in PATTERN_FIELD:
        return _patterns(PATTERN_FIELD[kind], getattr(spec, PATTERN_FIELD[kind]))
    if kind in ("template_delivered", "template_failed"):
        return _patterns("status", spec.status)
    if kind == "stage_changed":
        return _stage(spec.to, spec.from_, spec.direction)
    if kind == "score_crossed":
        model, threshold = spec.model or primary, float(spec.threshold)
        return lambda f: NOTHING if f.get("model") == model and f.get("threshold") == threshold else None
    if kind == "inactive":
        return lambda f: NOTHING if f.get("rule") == rule.name else None
    return lambda f: NOTHING


def _stage(to: str | None, old: str | None, direction: str) -> Matcher:
    def match(facts: Facts) -> dict[str, str] | None:
        if direction != "any" and facts.get("direction") != direction:
            return None
        if (to is not None and facts.get("stage") != to) or (old is not None and facts.get("from") != old):
            return None
        return NOTHING

    return match


def file_caps(rule: str, actions: Any, keyed: set[str], counted: set[str]) -> None:
    """Which cap history `rule`'s capped score actions need read with a batch: a once-style cap is looked up by key,
    any other is counted (scrm.playbook.shared reads both kinds for the rules named here)."""
    for action in actions:
        if action.verb == "score" and action.cap is not None:
            cap = action.cap
            (keyed if cap.once or (cap.per_day == 1 and cap.total is None) else counted).add(rule)
