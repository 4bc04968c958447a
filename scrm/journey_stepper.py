"""Executing journey steps for a batch of runs in one transaction (scrm.journeys calls it).

Each executed step appends one `journey_steps` row; `finish` inserts them all in one statement, unique per (run,
step), so a step executed twice anywhere fails the whole transaction instead of acting twice. Waits move the run's
`due_at`: a duration or `until` wait counts from when the run was due (a runner that was stopped catches up on the
schedule, in order, none skipped); an event wait looks for its event every `journey_events.POLL` until its timeout.
A `do` step that sends a template, due in quiet hours, waits for them to end (scrm.guards.quiet_until).

A batch is set-based like the applier's (scrm.playbook.shared): the followers' tags, scores and score caps are read
in one statement each for the whole batch, the actions' tags, outbox rows, score events and timeline entries are
written once at its end, runs are plain rows (scrm.journey_rows) written back in one executemany, and `happened`
reads each event once per batch (journey_events.Seen). The caller holds the followers' row locks (PostgreSQL), as
the applier does, so nothing else writes them meanwhile.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm import guards, journey_defs, journey_rows, journey_walk
from scrm.event_models import Event
from scrm.hours import ZONE
from scrm.journey_events import FORM_ENTRY, POLL, Seen, exit_reason, handovers, wait_until
from scrm.journey_models import CONVERTED, EXITED, FINISHED, RUNNING, JourneyStep
from scrm.journey_rows import RunRow
from scrm.models import Activity, Follower
from scrm.playbook.compiled import Compiled, CompiledRule, file_caps
from scrm.playbook.engine import ACTIONS, Quiet, Run
from scrm.playbook.grammar import Journey, Step
from scrm.playbook.shared import Shared

MAX_HOPS = 200  # steps one run may execute in one go (a journey is a finite tree; this only bounds a bad one)


def event_of(session: Session, context: dict[str, Any] | None) -> Any:
    """The event named in a run's context (`{"event": slug}`: the rule that started it bound `{event}`), or None."""
    slug = (context or {}).get("event")
    if not slug:
        return None
    return session.execute(select(Event.name, Event.starts_at).where(Event.slug == slug)).first()


def event_values(event: Any) -> dict[str, str]:
    """What steps can name about the run's event: {event_name}, {event_starts_at} (local time, Asia/Shanghai)."""
    if event is None:
        return {}
    starts = event.starts_at.replace(tzinfo=UTC).astimezone(ZONE)
    return {"event_name": event.name, "event_starts_at": starts.strftime("%Y-%m-%d %H:%M")}


class BatchContext(Quiet):
    """A context without an inbound message whose outbox rows are written with the batch (scrm.playbook.shared)."""

    def __init__(self, session: Session, follower: Follower, shared: Shared) -> None:
        super().__init__(session, follower)
        self.shared = shared

    def enqueue(self, task: str, args: dict[str, Any], key: str | None = None) -> None:
        self.shared.enqueue(task, args, key, utcnow())  # when queued (the sweeper's clock), not the steps' `now`


class Stepper:
    """One transaction's worth of steps: definitions and the followers' facts read once (`prepare`), the steps'
    rows, timeline entries, effects and the runs themselves written at the end (`finish`)."""

    def __init__(self, session: Session, book: Compiled | None, now: datetime, rules: Any = None) -> None:
        self.session, self.book, self.now = session, book, now
        self.rules: guards.SendRules = rules or guards.SendRules.load()
        self.quiet_until = guards.quiet_until(self.rules, now)
        self.steps: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.outbox_ids: list[int] = []
        self.runs: list[RunRow] = []
        self.moved: dict[int, datetime] = {}
        self.shared: Shared | None = None
        self.seen: Seen | None = None
        self._defs: dict[tuple[str, int], Journey | None] = {}
        self._events: dict[str, Any] = {}  # event slug → (name, starts_at), read once per batch
        self._rules: dict[tuple[str, int, str], tuple[CompiledRule, tuple[str, ...]]] = {}
        self._noted: set[tuple[int, str]] = set()  # (follower, timeline kind) the batch noted, not written yet
        self._indexed = (0, 0)

    def lock(self, follower: Follower) -> None:
        """Serialise with other writers of this follower (PostgreSQL; SQLite has one writer). `run_due` locks its
        batch's followers with the select that loads them."""
        if self.book is not None:
            Run(self.book, Quiet(self.session, follower), scope="lock", now=self.now).lock()

    def prepare(self, runs: list[RunRow], follower_ids: list[int]) -> None:
        """Read what the runs need for the whole batch at once: definitions, the followers' tags, scores and score
        caps (scrm.playbook.shared), their handovers. The followers are locked already."""
        self.runs = runs
        keyed: set[str] = set()
        counted: set[str] = set()
        for run in runs:
            self._journey(run)
        for (name, _version), journey in self._defs.items():
            if journey is not None:
                for _path, step in journey_walk.paths(journey.steps):  # as Compiled files the rules'
                    file_caps(f"journey:{name}", step.do or [], keyed, counted)
        books = [self.book] if self.book is not None else []
        self.shared = Shared(self.session, follower_ids, self.now, books, caps=(keyed, counted))
        self.moved = handovers(self.session, follower_ids)
        self.seen = Seen(self.session, follower_ids, self._pending)

    def finish(self, out: Any) -> Any:
        """Write the batch: step rows first (a step executed elsewhere fails here, and the transaction with it), the
        actions' pending writes, timeline entries, the runs; `out` gets the counts and outbox ids."""
        if self.steps:
            self.session.execute(insert(JourneyStep.__table__), self.steps)
        if self.shared is not None:
            self.shared.notes += self.notes  # the steps' timeline entries with the actions': one statement
            self.notes = []
            self.shared.flush()
            self.outbox_ids += self.shared.outbox_ids
        elif self.notes:
            self.session.execute(insert(Activity.__table__), self.notes)
        journey_rows.write(self.session, self.runs)
        out.steps, out.outbox_ids = len(self.steps), self.outbox_ids
        return out

    # --- one run --------------------------------------------------------------------------------------------------

    def advance(self, run: RunRow, follower: Follower) -> None:
        """Execute `run` from its position until a wait that is not over, or its end."""
        journey = self._journey(run)
        if journey is None or self.book is None:
            return self._end(run, EXITED, run.reason or "no active playbook")
        assert self.shared is not None, "prepare() first"
        engine = Run(self.book, BatchContext(self.session, follower, self.shared), scope="", now=self.now)
        with self.session.no_autoflush:  # the followers' changes are flushed together, at commit
            for _ in range(MAX_HOPS):
                if run.state != RUNNING or not self._next(run, journey, engine):
                    break

    def recheck(self, run: RunRow, follower: Follower) -> bool:
        """A waiting run's goal and exits, now (scrm.journey_recheck): True when the run ended; otherwise it keeps
        waiting as it was, marked as looked at."""
        journey = self._journey(run)
        if journey is not None and self.book is not None:
            assert self.shared is not None, "prepare() first"
            ctx = BatchContext(self.session, follower, self.shared)
            if self._stopped(run, journey, Run(self.book, ctx, scope="", now=self.now)):
                return True
        run.updated_at = self.now
        return False

    def _next(self, run: RunRow, journey: Journey, engine: Run) -> bool:
        """One step; False when the run waits or ended."""
        path = run.position
        spec = journey_walk.at(journey, path)
        if path is None or spec is None:
            state, why = (
                (FINISHED, "completed") if path is None else (EXITED, f"version {run.version} has no step {path}")
            )
            self._end(run, state, why)
            return False
        if self._stopped(run, journey, engine):
            return False
        if spec.wait is not None:
            return self._wait(run, journey, path, spec)
        if spec.yes is not None or spec.no is not None:
            return self._branch(run, journey, path, spec, engine)
        return self._do(run, journey, path, spec, engine)

    def _stopped(self, run: RunRow, journey: Journey, engine: Run) -> bool:
        """The goal (converted) or an exit ends the run before its next step."""
        if journey.goal is not None and engine.holds(journey.goal):
            self._end(run, CONVERTED, "goal")
            return True
        if journey.exit_if is not None and engine.holds(journey.exit_if):
            self._end(run, EXITED, "exit_if")
            return True
        tags = engine.tags() if "opted_out" in journey.exit_on else set()
        moved = self.moved.get(run.follower_id) if "handed_over" in journey.exit_on else None
        why = exit_reason(engine.follower, journey.exit_on, tags, self.rules.opt_out_tag, run.started_at, moved)
        if why is not None:
            self._end(run, EXITED, why)
        return why is not None

    def _wait(self, run: RunRow, journey: Journey, path: str, spec: Step) -> bool:
        wait = spec.wait
        assert wait is not None
        if run.since is None:  # entering the wait
            base = run.due_at or self.now
            if wait.event is not None:
                run.since, run.due_at = self.now, min(self.now + POLL, self.now + _seconds(wait.timeout))
            else:
                event = self._event(run.context) if wait.until is not None else None
                due = wait_until(wait, base, event.starts_at if event else None)
                if due is None:
                    self._end(run, EXITED, "no event start for this run's wait")
                    return False
                if due < self.now and getattr(wait.until, "missed", "run") == "skip":
                    return self._missed(run, journey, path)
                run.since, run.due_at = base, due
            run.updated_at = self.now
            if run.due_at > self.now:
                return False
        outcome = "done"
        if wait.event is not None:
            deadline = run.since + _seconds(wait.timeout)
            if self._happened(run, wait.event, run.since):
                outcome, run.due_at = "happened", self.now
            elif self.now < deadline:
                run.due_at = min(self.now + POLL, deadline)
                return False
            else:
                outcome, run.due_at = "timeout", deadline
        self._record(run, path, outcome)
        run.since, run.position = None, journey_walk.after(journey, path)
        return True

    def _missed(self, run: RunRow, journey: Journey, path: str) -> bool:
        """An event-relative time already past when the run reached the wait: the wait and its next step are skipped
        (a reminder for the day before is not sent on the day)."""
        self._record(run, path, "missed")
        following = journey_walk.after(journey, path)
        if following is not None:
            self._record(run, following, "skipped")
            following = journey_walk.after(journey, following)
        run.position = following
        return True

    def _holds(self, run: RunRow, spec: Step, engine: Run) -> bool:
        cond = spec.if_
        if cond is None:
            return True
        if not engine.holds(cond):
            return False
        seen = [self._happened(run, e, run.started_at) for e in cond.happened + cond.not_happened]
        return all(seen[: len(cond.happened)]) and not any(seen[len(cond.happened) :])

    def _branch(self, run: RunRow, journey: Journey, path: str, spec: Step, engine: Run) -> bool:
        way = "yes" if self._holds(run, spec, engine) else "no"
        self._record(run, path, way)
        inner = getattr(spec, way)
        run.position = journey_walk.branch(path, way) if inner else journey_walk.after(journey, path)
        return True

    def _do(self, run: RunRow, journey: Journey, path: str, spec: Step, engine: Run) -> bool:
        rule, verbs = self._rule(run, path, spec)
        if self.quiet_until is not None and "send_template" in verbs:
            run.due_at = self.quiet_until  # quiet hours: the step waits for them to end
            return False
        if not self._holds(run, spec, engine):
            self._record(run, path, "skipped")
        else:
            self._act(run, path, spec, engine, rule, verbs)
            self._record(run, path, "done", actions=list(verbs))
        run.position = journey_walk.after(journey, path)
        return True

    def _act(self, run: RunRow, path: str, spec: Step, engine: Run, rule: CompiledRule, verbs: tuple[str, ...]) -> None:
        """The actions through the engine's own code, keyed by run and step (`rule:journey:<name>:<run>:<path>`)."""
        engine.scope, engine.fired = f"{run.id}:{path}", set()
        event = event_values(self._event(run.context)) if run.context else {}
        values = {"openid": engine.follower.openid, **(run.context or {}), **event}
        for i, (verb, action) in enumerate(zip(verbs, spec.do, strict=True)):
            ACTIONS[verb](engine, rule, i, action, values)
        engine.drain()  # signals the actions gave (tag_added...) run the playbook's rules

    # --- what the batch reads once --------------------------------------------------------------------------------

    def _rule(self, run: RunRow, path: str, spec: Step) -> tuple[CompiledRule, tuple[str, ...]]:
        """The stand-in rule a `do` step's actions run as (`journey:<name>`: score caps, keys, the timeline's
        `rule`) and the actions' verbs, once per step of a version."""
        key = (run.journey, run.version or 0, path)
        found = self._rules.get(key)
        if found is None:
            verbs = tuple(a.verb for a in spec.do)
            templates = verbs.count("send_template")
            rule = CompiledRule(
                f"journey:{run.journey}", -1, "journey", lambda facts: None, spec.if_, None, templates, False
            )  # type: ignore[arg-type]
            found = self._rules[key] = (rule, verbs)
        return found

    def _event(self, context: dict[str, Any] | None) -> Any:
        slug = (context or {}).get("event")
        if not slug:
            return None
        if slug not in self._events:
            self._events[slug] = event_of(self.session, context)
        return self._events[slug]

    def _happened(self, run: RunRow, event: str, since: datetime) -> bool:
        assert self.seen is not None, "prepare() first"
        return self.seen.happened(run.follower_id, event, since)

    def _pending(self, follower_id: int, event: str) -> bool:
        """Did this batch itself make `event` happen (written at its end, so the database cannot tell yet)?"""
        kind, _, arg = event.partition(":")
        if kind == "tag":
            return self.shared is not None and (follower_id, arg) in self.shared.attached
        if kind not in ("form_submitted", "activity"):
            return False  # inbound interactions: a batch writes none
        shared_notes = self.shared.notes if self.shared is not None else []
        a, b = self._indexed
        self._noted.update((n["follower_id"], n["kind"]) for n in shared_notes[a:])
        self._noted.update((n["follower_id"], n["kind"]) for n in self.notes[b:])
        self._indexed = (len(shared_notes), len(self.notes))
        return (follower_id, arg if kind == "activity" else FORM_ENTRY) in self._noted

    # --- bookkeeping ----------------------------------------------------------------------------------------------

    def _journey(self, run: RunRow) -> Journey | None:
        """The run's version; a run started before versions is pinned to the journey's current one first."""
        if run.version is None and not self._pin(run):
            return None
        key = (run.journey, run.version or 0)
        if key not in self._defs:
            self._defs[key] = journey_defs.definition(self.session, *key)
        return self._defs[key]

    def _pin(self, run: RunRow) -> bool:
        spec = self.book.book.journeys.get(run.journey) if self.book else None
        if spec is None:
            run.reason = f"journey {run.journey!r} is not in the active playbook"
            return False
        run.version = journey_defs.ensure(self.session, run.journey, spec)
        run.position = str(run.step) if run.step < len(spec.steps) else None
        return True

    def _record(self, run: RunRow, path: str, outcome: str, **data: Any) -> None:
        self.steps.append({"run_id": run.id, "path": path, "outcome": outcome, "at": self.now})
        self._note(run, "journey_step", step=path, outcome=outcome, **data)
        run.step, run.updated_at = run.step + 1, self.now

    def _end(self, run: RunRow, state: str, reason: str) -> None:
        run.state, run.reason, run.updated_at, run.due_at = state, reason, self.now, None
        self._note(run, "journey_finished", state=state, reason=reason, step=run.position)

    def _note(self, run: RunRow, kind: str, **data: Any) -> None:
        self.notes.append({"follower_id": run.follower_id, "kind": kind, "at": self.now, "interaction_id": None,
                           "data": {"journey": run.journey, "run": run.id, **data}})  # fmt: skip


def _seconds(value: int | None) -> timedelta:
    return timedelta(seconds=value or 0)
