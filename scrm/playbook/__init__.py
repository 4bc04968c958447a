"""The playbook: the marketer's rules as data (YAML, validated, versioned in the database), and the engine that runs
them when the applier applies each inbound event. Grammar: docs/playbook.md.

The engine is imported lazily: scrm.scoring and scrm.stages read this package's tables (scrm.playbook.models), and
the engine reads them, so an eager import here would be circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrm.playbook.validate import PlaybookError, parse

if TYPE_CHECKING:
    from scrm.ingest import Event, Visit
    from scrm.playbook.compiled import Compiled, Signal

__all__ = ["PlaybookError", "parse", "run", "signals"]


def run(visit: Visit, book: Compiled | None) -> None:
    """Run `book` for an interaction being applied (scrm.playbook.inbound.run)."""
    from scrm.playbook.inbound import run as run_visit

    run_visit(visit, book)


def signals(event: Event) -> list[Signal]:
    """The signals an inbound event raises (scrm.playbook.inbound.signals)."""
    from scrm.playbook.inbound import signals as inbound_signals

    return inbound_signals(event)
