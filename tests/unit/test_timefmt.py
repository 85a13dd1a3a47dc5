"""Timestamps rendered in an account's time zone, checked against zoneinfo's own conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rcsgate.domain.timefmt import format_ts, zone

# Half-hour and 45-minute offsets, half-hour DST shifts, southern-hemisphere DST, no DST.
ZONES = [
    "Europe/Kyiv",
    "America/New_York",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "UTC",
]


def _expected(moment: datetime, tz: str) -> str:
    return moment.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("tz", ZONES)
def test_two_years_match_zoneinfo_and_every_minute_of_an_hour_with_a_change(tz: str) -> None:
    hour = datetime(2025, 1, 1, tzinfo=UTC)
    changes = 0
    while hour.year < 2027:
        last = hour + timedelta(hours=1, microseconds=-1)
        probes = [hour, hour + timedelta(minutes=37, seconds=13, microseconds=5), last]
        if hour.astimezone(zone(tz)).utcoffset() != last.astimezone(zone(tz)).utcoffset():
            changes += 1
            probes += [hour + timedelta(minutes=m, seconds=s) for m in range(60) for s in (0, 59)]
        for probe in probes:
            assert format_ts(probe, tz) == _expected(probe, tz), probe
        hour += timedelta(hours=1)
    # Changes that fall inside an hour of UTC time rather than on its edge: both of St. John's
    # (02:00 at -03:30 or -02:30) and Lord Howe's start of summer time (02:00 at +10:30).
    assert changes == {"America/St_Johns": 4, "Australia/Lord_Howe": 2}.get(tz, 0)


def test_around_a_transition_to_the_second() -> None:
    # Kyiv left summer time at 2026-10-25 01:00 UTC (04:00 EEST → 03:00 EET).
    change = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    assert format_ts(change - timedelta(microseconds=1), "Europe/Kyiv") == "2026-10-25 03:59:59"
    assert format_ts(change, "Europe/Kyiv") == "2026-10-25 03:00:00"
    assert format_ts(None, "Europe/Kyiv") is None
    # An aware time in another zone is converted, not reinterpreted.
    other = datetime(2026, 7, 1, 12, 0, tzinfo=zone("America/New_York"))
    assert format_ts(other, "Europe/Kyiv") == "2026-07-01 19:00:00"
    assert format_ts(other) == "2026-07-01 16:00:00"
