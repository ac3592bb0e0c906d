"""Next fire times of EventBridge Scheduler expressions, as AWS documents them: cron's six fields with days
of the week from 1 = Sunday, L / W / #, and rate schedules anchored at their start date."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trainforge.pipeline.recurrence import next_fire, parse

# Tuesday 1 December 2026, 10:30 UTC
NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 3 ? * MON *)", datetime(2026, 12, 7, 3, 0)),  # MON is 2 in AWS's numbering
        ("cron(0 3 ? * 2 *)", datetime(2026, 12, 7, 3, 0)),
        ("cron(0 3 ? * 1 *)", datetime(2026, 12, 6, 3, 0)),  # 1 is Sunday
        ("cron(0/15 * * * ? *)", datetime(2026, 12, 1, 10, 45)),
        ("cron(30 10 * * ? *)", datetime(2026, 12, 2, 10, 30)),  # strictly after now
        ("cron(0 12 L * ? *)", datetime(2026, 12, 31, 12, 0)),  # last day of the month
        ("cron(0 9 ? * 6#3 *)", datetime(2026, 12, 18, 9, 0)),  # third Friday
        ("cron(0 9 ? * 5L *)", datetime(2026, 12, 31, 9, 0)),  # last Thursday
        ("cron(0 8 5W * ? *)", datetime(2026, 12, 4, 8, 0)),  # the 5th is a Saturday: Friday the 4th
        ("cron(0 8 6W * ? *)", datetime(2026, 12, 7, 8, 0)),  # the 6th is a Sunday: Monday the 7th
        ("cron(0 0 1 JAN-MAR ? *)", datetime(2027, 1, 1, 0, 0)),
        ("cron(0 0 29 2 ? *)", datetime(2028, 2, 29, 0, 0)),  # the next leap day
        ("cron(0 0 1 1 ? 2025)", None),  # never again
    ],
)
def test_cron(expression, expected):
    assert next_fire(expression, NOW) == (expected.replace(tzinfo=UTC) if expected else None)


def test_a_rate_schedule_fires_at_its_start_then_every_period():
    start = datetime(2026, 11, 20, tzinfo=UTC)
    assert next_fire("rate(7 days)", NOW, start) == datetime(2026, 12, 4, tzinfo=UTC)
    assert next_fire("rate(7 days)", datetime(2026, 11, 1, tzinfo=UTC), start) == start
    assert next_fire("rate(1 hour)", NOW) == datetime(2026, 12, 1, 11, 30, tzinfo=UTC)  # no start: from now


def test_a_one_time_schedule_fires_once():
    assert next_fire("at(2026-12-01T11:00:00)", NOW) == datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert next_fire("at(2026-12-01T10:00:00)", NOW) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 3 * * MON *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 3 ? * *)", "has 5 fields"),
        ("cron(61 3 ? * MON *)", "minutes: '61' is not between 0 and 59"),
        ("cron(0 3 ? FOO MON *)", "month: 'FOO'"),
        ("cron(0 5-3 ? * MON *)", "hours: range '5-3' runs backwards"),
        ("every(7 days)", "neither rate"),
    ],
)
def test_errors_name_the_field(expression, message):
    with pytest.raises(ValueError, match=message):
        parse(expression)
