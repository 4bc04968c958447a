"""Outbox task names → job functions. Playbook actions and handlers write these names into outbox rows."""

from __future__ import annotations

import importlib
import pkgutil
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
    """Import every module of the tasks package, so each `@task` registers (the worker calls this once at start).

    Discovered, not listed: a new task module is found without anyone remembering to add it here.
    """
    import tasks

    for module in pkgutil.walk_packages(tasks.__path__, prefix="tasks."):
        importlib.import_module(module.name)
