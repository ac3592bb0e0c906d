"""When a schedule fires next: EventBridge Scheduler's ``rate(...)`` and ``cron(...)`` expressions, evaluated
in UTC the way the service evaluates them, so ``trainforge schedules list`` shows the same times in both modes
and ``trainforge watch`` fires when AWS would.

Cron has six fields, ``minutes hours day-of-month month day-of-week year``; exactly one of the two day
fields is ``?``; days of the week are 1-7 from Sunday (or SUN-SAT); ``L``, ``W`` and ``#`` as AWS defines
them (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based). A rate
schedule's first occurrence is its start date; without one it fires at once
(https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#rate-based).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_RATE = re.compile(r"^rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}
#: AWS numbers the days of the week 1 (SUN) to 7 (SAT)
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
#: how far ahead a cron expression is searched; a year field can make it fire never again
_HORIZON_DAYS = 5 * 366


def aws_weekday(day: date) -> int:
    """Python's Monday=0 as AWS's Sunday=1 ... Saturday=7."""
    return (day.weekday() + 1) % 7 + 1


@dataclass(frozen=True)
class Rate:
    every: timedelta


@dataclass(frozen=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    years: frozenset[int] | None
    day: Callable[[date], bool]


def _values(field: str, low: int, high: int, names: dict[str, int], what: str) -> set[int]:
    """``*``, ``a``, ``a-b``, ``a/step``, ``a-b/step``, ``*/step`` and lists of them."""
    found: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"{what}: step '{step_text}' in '{part}' is not a positive number")
        if base == "*":
            first, last = low, high
        else:
            start_text, dash, end_text = base.partition("-")
            first = _number(start_text, low, high, names, what)
            last = _number(end_text, low, high, names, what) if dash else (high if step else first)
        if first > last:
            raise ValueError(f"{what}: range '{base}' runs backwards")
        found.update(range(first, last + 1, step or 1))
    return found


def _number(text: str, low: int, high: int, names: dict[str, int], what: str) -> int:
    value = names.get(text.upper()) if not text.isdigit() else int(text)
    if value is None or not low <= value <= high:
        raise ValueError(f"{what}: '{text}' is not between {low} and {high}")
    return value


def _day_of_month(field: str) -> Callable[[date], bool]:
    if field == "?":
        return lambda day: True
    if field == "L":
        return lambda day: day.day == _last_day(day)
    if field == "LW":
        return lambda day: day == _nearest_weekday(day, _last_day(day))
    if match := re.fullmatch(r"([1-9]|[12]\d|3[01])W", field):
        wanted = int(match.group(1))
        return lambda day: wanted <= _last_day(day) and day == _nearest_weekday(day, wanted)
    days = _values(field, 1, 31, {}, "day-of-month")
    return lambda day: day.day in days


def _last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _nearest_weekday(day: date, number: int) -> date:
    """The weekday nearest to the ``number``-th of ``day``'s month, never leaving the month (``W``)."""
    target = day.replace(day=number)
    if target.weekday() == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return target - timedelta(days=1) if number > 1 else target + timedelta(days=2)
    if target.weekday() == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return target + timedelta(days=1) if number < _last_day(day) else target - timedelta(days=2)
    return target


def _day_of_week(field: str) -> Callable[[date], bool]:
    if field == "?":
        return lambda day: True
    if field == "L":  # the last day of the week: Saturday
        return lambda day: aws_weekday(day) == 7
    if match := re.fullmatch(r"([1-7]|[A-Za-z]{3})L", field):
        weekday = _number(match.group(1), 1, 7, _DAYS, "day-of-week")
        return lambda day: aws_weekday(day) == weekday and (day + timedelta(days=7)).month != day.month
    if match := re.fullmatch(r"([1-7]|[A-Za-z]{3})#([1-5])", field):
        weekday, nth = _number(match.group(1), 1, 7, _DAYS, "day-of-week"), int(match.group(2))
        return lambda day: aws_weekday(day) == weekday and (day.day - 1) // 7 + 1 == nth
    weekdays = _values(field, 1, 7, _DAYS, "day-of-week")
    return lambda day: aws_weekday(day) in weekdays


def parse(expression: str) -> Rate | Cron:
    """A recurring expression, or ValueError saying which field is wrong."""
    if match := _RATE.match(expression):
        return Rate(timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2).rstrip("s")]))
    match = _CRON.match(expression)
    if match is None:
        raise ValueError(f"'{expression}' is neither rate(N unit) nor cron(...)")
    fields = match.group(1).split()
    if len(fields) != 6:
        raise ValueError(
            f"'{expression}' has {len(fields)} fields; cron takes six (minutes hours day-of-month month day-of-week year)"
        )
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ValueError(f"'{expression}': exactly one of day-of-month and day-of-week must be '?'")
    dom, dow = _day_of_month(day_of_month), _day_of_week(day_of_week)
    return Cron(
        minutes=tuple(sorted(_values(minutes, 0, 59, {}, "minutes"))),
        hours=tuple(sorted(_values(hours, 0, 23, {}, "hours"))),
        months=frozenset(_values(month, 1, 12, _MONTHS, "month")),
        years=None if year == "*" else frozenset(_values(year, 1970, 2199, {}, "year")),
        day=lambda day: dom(day) and dow(day),
    )


def next_fire(expression: str, after: datetime, start: datetime | None = None) -> datetime | None:
    """The first time strictly after ``after`` (UTC, whole minutes) that the schedule fires; None when it
    never fires again. ``start`` is a rate schedule's start date (its first occurrence). A one-time
    ``at(...)`` schedule fires at its time."""
    after = after.astimezone(UTC)
    if once := _AT.match(expression):
        moment = datetime.fromisoformat(once.group(1)).replace(tzinfo=UTC)
        return moment if moment > after else None
    schedule = parse(expression)
    if isinstance(schedule, Rate):
        anchor = (start or after).astimezone(UTC)
        if anchor > after:
            return anchor
        periods = (after - anchor) // schedule.every + 1
        return anchor + periods * schedule.every
    first = after.replace(second=0, microsecond=0)
    for offset in range(_HORIZON_DAYS):
        day = first.date() + timedelta(days=offset)
        if day.month not in schedule.months or (schedule.years is not None and day.year not in schedule.years):
            continue
        if not schedule.day(day):
            continue
        for hour in schedule.hours:
            for minute in schedule.minutes:
                moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                if moment > after:
                    return moment
    return None
