"""Garbage-collector settings for the long-running processes (API, worker, serve).

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
