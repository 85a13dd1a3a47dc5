"""Garbage-collector settings for the long-running processes (API, worker, serve, simulator).

A campaign of 5000 recipients or a batch of reports allocates tens of thousands of short-lived
objects; with CPython's default thresholds that triggers collections of the older generations,
each walking every object the process holds (the app, SQLAlchemy's caches, the imported modules),
which showed up as pauses of tens of milliseconds inside request handling. What exists at startup
lives as long as the process, so it is moved out of the collector's sight (``gc.freeze``), and the
young generation is collected less often. Reference counting still frees most objects at once;
only cycles wait for a collection.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def tune_for_service() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


# The simulator and the local RBM keep what they were sent (to answer a resubmit as Google does) and
# every report and event until it is pushed: a live heap that grows with the traffic, millions of
# objects in a 100,000-message run. With the default thresholds the collector walked it again and
# again: 22.7 s of the local RBM's ~40 s of CPU in that run, with pauses up to 0.66 s during which
# every submit waited (2026-12-05). Young collections 70 times rarer, and full ones only after 100
# middle ones, leave cycles to be collected still, but seldom.
SIMULATOR_THRESHOLDS = (50_000, 20, 100)


def tune_for_simulator() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SIMULATOR_THRESHOLDS)
