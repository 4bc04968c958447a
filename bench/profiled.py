#!/usr/bin/env python3
"""Run a module under cProfile with the main thread's CPU clock, for bench/broadcast.py --profile.

    python bench/profiled.py OUT.pstats flask --app wsgi worker

The clock is `time.thread_time`: waits (the token bucket's sleeps, the network) cost nothing, and the worker's
dispatcher thread is not counted. Profiling starts at SIGUSR1 (so the imports and start-up are left out), or at once
with PROFILE_FROM_START=1. The stats are written when the module returns or raises SystemExit (a worker stopped by
SIGTERM returns from `work()`), which is how bench/broadcast.py stops it.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
import time


def main() -> None:
    out, module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    sys.path.insert(0, os.getcwd())  # `python -m flask` would have the working directory (the checkout) first
    profile = cProfile.Profile(time.thread_time)
    signal.signal(signal.SIGUSR1, lambda *_: profile.enable())  # handlers run in the main thread: the one profiled
    if os.environ.get("PROFILE_FROM_START"):
        profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
