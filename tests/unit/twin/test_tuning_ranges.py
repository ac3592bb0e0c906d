"""The twin's draws from a tuning job's ParameterRanges: inside each range, on its scale, repeatable per seed."""

from __future__ import annotations

import math
import statistics

from tests.twin.tuning import Ranges

RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "lr", "MinValue": "0.0001", "MaxValue": "1", "ScalingType": "Logarithmic"},
        {"Name": "linear", "MinValue": "0", "MaxValue": "1", "ScalingType": "Linear"},
        {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.9999", "ScalingType": "ReverseLogarithmic"},
    ],
    "IntegerParameterRanges": [{"Name": "rank", "MinValue": "4", "MaxValue": "64", "ScalingType": "Logarithmic"}],
    "CategoricalParameterRanges": [{"Name": "targets", "Values": ["attention", "all"]}],
}


def draws(seed: int, count: int = 400) -> list[dict[str, str]]:
    ranges = Ranges(RANGES, seed)
    return [ranges.draw() for _ in range(count)]


def test_every_value_is_a_string_inside_its_range():
    for values in draws(1):
        assert set(values) == {"lr", "linear", "momentum", "rank", "targets"}
        assert 1e-4 <= float(values["lr"]) <= 1 and 0 <= float(values["linear"]) <= 1
        assert 0.9 <= float(values["momentum"]) <= 0.9999
        assert 4 <= int(values["rank"]) <= 64 and values["targets"] in {"attention", "all"}


def test_each_scale_spreads_the_values_as_its_name_says():
    sample = draws(2)
    # Logarithmic: the median sits near the geometric middle (0.01), far below the linear one (0.5)
    assert 0.003 < statistics.median(float(v["lr"]) for v in sample) < 0.03
    assert 0.4 < statistics.median(float(v["linear"]) for v in sample) < 0.6
    # ReverseLogarithmic: 1 - value is log-uniform, so the median 1 - value is near sqrt(0.1 * 0.0001)
    median_gap = statistics.median(1 - float(v["momentum"]) for v in sample)
    assert 0.3 * math.sqrt(1e-5) < median_gap < 3 * math.sqrt(1e-5)
    assert 10 <= statistics.median(int(v["rank"]) for v in sample) <= 22  # log-middle of 4-64 is 16
    assert {v["targets"] for v in sample} == {"attention", "all"}


def test_the_same_seed_draws_the_same_values():
    assert draws(3, 5) == draws(3, 5) != draws(4, 5)
