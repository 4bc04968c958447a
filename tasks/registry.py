"""Outbox task names → job functions. Playbook actions and handlers write these names into outbox rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TaskFn = Callable[..., Any]
TASKS: dict[str, TaskFn] = {}


def task(name: str) -> Callable[[TaskFn], TaskFn]:
    def register(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return register


class RetryLater(Exception):
    """Transient failure: run the outbox row again after `delay` seconds (backoff is the task's choice)."""

    def __init__(self, reason: str, delay: float = 30.0) -> None:
        super().__init__(reason)
        self.delay = delay


class GiveUp(Exception):
    """Permanent failure: the row is closed with this reason and never retried."""


def load_all() -> None:
    """Import every module that registers tasks (the worker calls this once at start)."""
    import tasks.journey
    import tasks.notify
    import tasks.profile
    import tasks.send  # noqa: F401
