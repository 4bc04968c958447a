"""Executing journey steps for a batch of runs in one transaction (scrm.journeys calls it).

Each executed step appends one `journey_steps` row; `finish` inserts them all in one statement, unique per (run,
step), so a step executed twice anywhere fails the whole transaction instead of acting twice. Waits move the run's
`due_at`: a duration or `until` wait counts from when the run was due (a runner that was stopped catches up on the
schedule, in order, none skipped); an event wait looks for its event every `journey_events.POLL` until its timeout.
A `do` step that sends a template, due in quiet hours, waits for them to end (scrm.guards.quiet_until).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from scrm import guards, journey_defs, journey_walk
from scrm.event_models import Event
from scrm.hours import ZONE
from scrm.journey_events import POLL, exit_reason, handovers, happened, wait_until
from scrm.journey_models import CONVERTED, EXITED, FINISHED, RUNNING, JourneyRun, JourneyStep
from scrm.models import Activity, Follower
from scrm.playbook.compiled import Compiled, CompiledRule
from scrm.playbook.engine import ACTIONS, Quiet, Run
from scrm.playbook.grammar import Journey, Step

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


class Stepper:
    """One transaction's worth of steps: definitions read once, rows and timeline entries written at the end."""

    def __init__(self, session: Session, book: Compiled | None, now: datetime, rules: Any = None) -> None:
        self.session, self.book, self.now = session, book, now
        self.rules: guards.SendRules = rules or guards.SendRules.load()
        self.quiet_until = guards.quiet_until(self.rules, now)
        self.steps: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.outbox_ids: list[int] = []
        self._defs: dict[tuple[str, int], Journey | None] = {}
        self.moved: dict[int, datetime] = {}

    def prefetch(self, follower_ids: list[int]) -> None:
        """What exits need that is not on the follower row, for the whole batch in one query."""
        self.moved = handovers(self.session, follower_ids)

    def lock(self, follower: Follower) -> None:
        """Serialise with other writers of this follower (PostgreSQL; SQLite has one writer)."""
        if self.book is not None:
            Run(self.book, Quiet(self.session, follower), scope="lock", now=self.now).lock()

    def finish(self, out: Any) -> Any:
        """Write the batch's step rows and timeline entries; `out` gets the counts and outbox ids."""
        if self.steps:
            self.session.execute(insert(JourneyStep.__table__), self.steps)
        if self.notes:
            self.session.execute(insert(Activity.__table__), self.notes)
        out.steps, out.outbox_ids = len(self.steps), self.outbox_ids
        return out

    # --- one run --------------------------------------------------------------------------------------------------

    def advance(self, run: JourneyRun, follower: Follower) -> None:
        """Execute `run` from its position until a wait that is not over, or its end."""
        journey = self._journey(run)
        if journey is None or self.book is None:
            return self._end(run, EXITED, run.reason or "no active playbook")
        ctx = Quiet(self.session, follower)
        engine = Run(self.book, ctx, scope="", now=self.now)
        with self.session.no_autoflush:  # the runs' changes are flushed together, at commit
            for _ in range(MAX_HOPS):
                if run.state != RUNNING or not self._next(run, journey, engine):
                    break
        self.outbox_ids += ctx.outbox_ids

    def _next(self, run: JourneyRun, journey: Journey, engine: Run) -> bool:
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

    def _stopped(self, run: JourneyRun, journey: Journey, engine: Run) -> bool:
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

    def _wait(self, run: JourneyRun, journey: Journey, path: str, spec: Step) -> bool:
        wait = spec.wait
        assert wait is not None
        if run.since is None:  # entering the wait
            base = run.due_at or self.now
            if wait.event is not None:
                run.since, run.due_at = self.now, min(self.now + POLL, self.now + _seconds(wait.timeout))
            else:
                event = event_of(self.session, run.context) if wait.until is not None else None
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
            if happened(self.session, run.follower_id, wait.event, run.since):
                outcome, run.due_at = "happened", self.now
            elif self.now < deadline:
                run.due_at = min(self.now + POLL, deadline)
                return False
            else:
                outcome, run.due_at = "timeout", deadline
        self._record(run, path, outcome)
        run.since, run.position = None, journey_walk.after(journey, path)
        return True

    def _missed(self, run: JourneyRun, journey: Journey, path: str) -> bool:
        """An event-relative time already past when the run reached the wait: the wait and its next step are skipped
        (a reminder for the day before is not sent on the day)."""
        self._record(run, path, "missed")
        following = journey_walk.after(journey, path)
        if following is not None:
            self._record(run, following, "skipped")
            following = journey_walk.after(journey, following)
        run.position = following
        return True

    def _holds(self, run: JourneyRun, spec: Step, engine: Run) -> bool:
        cond = spec.if_
        if cond is None:
            return True
        if not engine.holds(cond):
            return False
        seen = [happened(self.session, run.follower_id, e, run.started_at) for e in cond.happened + cond.not_happened]
        return all(seen[: len(cond.happened)]) and not any(seen[len(cond.happened) :])

    def _branch(self, run: JourneyRun, journey: Journey, path: str, spec: Step, engine: Run) -> bool:
        way = "yes" if self._holds(run, spec, engine) else "no"
        self._record(run, path, way)
        inner = getattr(spec, way)
        run.position = journey_walk.branch(path, way) if inner else journey_walk.after(journey, path)
        return True

    def _do(self, run: JourneyRun, journey: Journey, path: str, spec: Step, engine: Run) -> bool:
        if self.quiet_until is not None and any(a.verb == "send_template" for a in spec.do):
            run.due_at = self.quiet_until  # quiet hours: the step waits for them to end
            return False
        if not self._holds(run, spec, engine):
            self._record(run, path, "skipped")
        else:
            self._act(run, path, spec, engine)
            self._record(run, path, "done", actions=[a.verb for a in spec.do])
        run.position = journey_walk.after(journey, path)
        return True

    def _act(self, run: JourneyRun, path: str, spec: Step, engine: Run) -> None:
        """The actions through the engine's own code, keyed by run and step (`rule:journey:<name>:<run>:<path>`)."""
        engine.scope, engine.fired = f"{run.id}:{path}", set()
        templates = sum(1 for a in spec.do if a.verb == "send_template")
        rule = CompiledRule(
            f"journey:{run.journey}", -1, "journey", lambda facts: None, spec.if_, None, templates, False
        )  # type: ignore[arg-type]
        event = event_values(event_of(self.session, run.context)) if run.context else {}
        values = {"openid": engine.follower.openid, **(run.context or {}), **event}
        with self.session.no_autoflush:
            for i, action in enumerate(spec.do):
                ACTIONS[action.verb](engine, rule, i, action, values)
        engine.drain()  # signals the actions gave (tag_added...) run the playbook's rules; timeline rows written

    # --- bookkeeping ----------------------------------------------------------------------------------------------

    def _journey(self, run: JourneyRun) -> Journey | None:
        """The run's version; a run started before versions is pinned to the journey's current one first."""
        if run.version is None and not self._pin(run):
            return None
        key = (run.journey, run.version or 0)
        if key not in self._defs:
            self._defs[key] = journey_defs.definition(self.session, *key)
        return self._defs[key]

    def _pin(self, run: JourneyRun) -> bool:
        spec = self.book.book.journeys.get(run.journey) if self.book else None
        if spec is None:
            run.reason = f"journey {run.journey!r} is not in the active playbook"
            return False
        run.version = journey_defs.ensure(self.session, run.journey, spec)
        run.position = str(run.step) if run.step < len(spec.steps) else None
        return True

    def _record(self, run: JourneyRun, path: str, outcome: str, **data: Any) -> None:
        self.steps.append({"run_id": run.id, "path": path, "outcome": outcome, "at": self.now})
        self._note(run, "journey_step", step=path, outcome=outcome, **data)
        run.step, run.updated_at = run.step + 1, self.now

    def _end(self, run: JourneyRun, state: str, reason: str) -> None:
        run.state, run.reason, run.updated_at, run.due_at = state, reason, self.now, None
        self._note(run, "journey_finished", state=state, reason=reason, step=run.position)

    def _note(self, run: JourneyRun, kind: str, **data: Any) -> None:
        self.notes.append({"follower_id": run.follower_id, "kind": kind, "at": self.now, "interaction_id": None,
                           "data": {"journey": run.journey, "run": run.id, **data}})  # fmt: skip


def _seconds(value: int | None) -> Any:
    from datetime import timedelta

    return timedelta(seconds=value or 0)
