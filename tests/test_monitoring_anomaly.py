"""The anomaly detector on generated daily series with known anomalies (strata_monitor.anomaly)."""

from __future__ import annotations

import datetime as dt
import math
import random
import re

import pytest

from strata_monitor import anomaly

MONDAY = dt.date(2026, 1, 5)


def weekly(days: int, *, level: float = 2000, weekend: float = 0.55, noise: float = 0.04, seed: int = 1,
           growth: float = 0.0, changes: dict[int, float] | None = None) -> list[tuple[dt.date, float]]:
    """A series with weekend dips, multiplicative and Poisson-like noise; ``changes`` multiplies
    given day indexes (the injected anomalies)."""
    rng = random.Random(seed)
    out = []
    for i in range(days):
        day = MONDAY + dt.timedelta(days=i)
        mean = level * (weekend if day.weekday() >= 5 else 1.0) * math.exp(growth * i / days)
        value = mean * math.exp(rng.gauss(0, noise)) * (changes or {}).get(i, 1.0)
        out.append((day, max(0.0, round(value + rng.gauss(0, math.sqrt(value))))))
    return out


def flagged(series, settings=anomaly.Settings()) -> list[int]:
    return [i for i, v in enumerate(anomaly.detect(series, settings)) if v.is_anomaly]


def test_normal_weekly_series_raise_almost_nothing():
    judged = false_alerts = 0
    for seed in range(40):
        verdicts = anomaly.detect(weekly(112, seed=seed))
        judged += sum(v.status in ("normal", "anomaly") for v in verdicts)
        false_alerts += sum(v.is_anomaly for v in verdicts)
    assert judged == 40 * (112 - 21)
    assert false_alerts / judged < 0.004, false_alerts  # measured about 0.15 %


def test_weekend_dips_are_not_anomalies_but_a_weekday_drop_is():
    series = weekly(84, changes={79: 0.5})
    assert series[79][0].weekday() == 2  # a Wednesday
    assert flagged(series) == [79]


def test_a_weekend_at_weekday_level_is_an_anomaly():
    # Saturday with the volume of a weekday: +82 % for a Saturday, invisible to a plain z-score.
    series = weekly(84, changes={envelope: 1 / 0.55 for envelope in (82,)})
    assert series[82][0].weekday() == 5
    assert flagged(series) == [82]


def test_the_explanation_names_the_weekday_the_change_and_the_typical_range():
    series = weekly(84, changes={78: 0.5})
    verdict = anomaly.detect(series)[78]
    text = anomaly.explain("purchase events", verdict)
    assert verdict.is_anomaly and series[78][0].weekday() == 1
    assert text.startswith("Tuesday's purchase events (")
    assert "% below the usual Tuesday" in text and "typical range" in text
    assert 40 <= -verdict.change * 100 <= 60
    assert verdict.low < verdict.expected < verdict.high and not verdict.low <= verdict.value <= verdict.high


def test_no_verdict_without_minimum_history():
    series = weekly(30, changes={15: 0.2})
    verdicts = anomaly.detect(series)
    assert [v.status for v in verdicts[:21]] == ["insufficient_history"] * 21
    assert verdicts[15].status == "insufficient_history"  # a crash on day 15 cannot be judged yet
    assert "not judged" in anomaly.explain("orders", verdicts[15])
    assert {v.status for v in verdicts[21:]} <= {"normal", "anomaly"}


def test_flagged_days_stay_out_of_training():
    # A two-week partial outage: with the flagged days left out, every day of it is an anomaly
    # and the recovery is normal. If they trained the baseline, the outage becomes the normal
    # within a week, and then the recovery looks like a spike.
    outage = {i: 0.3 for i in range(63, 77)}
    series = weekly(98, changes=outage)
    assert flagged(series) == list(outage)
    kept = set(flagged(series, anomaly.Settings(exclude_flagged=False)))
    assert kept & set(outage) < set(outage) and kept - set(outage), sorted(kept)


def test_steady_growth_is_not_an_anomaly():
    # x2.7 in 12 weeks: the level follows it (a 14-day median, corrected by its own bias).
    alerts = sum(len(flagged(weekly(84, growth=1.0, seed=seed))) for seed in range(40))
    assert alerts / (40 * (84 - 21)) < 0.005, alerts  # measured about 0.2 %


def test_direction_up_ignores_drops():
    rate = [(day, 0.02 * (0.2 if i == 60 else 5.0 if i == 70 else 1.0) * (1 + 0.05 * ((i * 7) % 5 - 2)))
            for i, (day, _) in enumerate(weekly(84))]
    settings = anomaly.Settings(direction="up", counts=False, offset=0.001, floor_rel=0.1)
    assert flagged(rate, settings) == [70]


def test_zeros_missing_days_and_bad_input():
    series = weekly(60, changes={50: 0.0})
    assert 50 in flagged(series)  # a day with nothing at all
    gappy = [p for i, p in enumerate(weekly(60)) if i not in (40, 41)]
    verdicts = anomaly.detect(gappy)
    assert [v.status for v in verdicts[40:42]] == ["missing", "missing"]
    assert "no value" in anomaly.explain("orders", verdicts[40])
    with pytest.raises(ValueError, match="negative"):
        anomaly.detect([(MONDAY, -1.0)])
    with pytest.raises(ValueError, match="direction"):
        anomaly.Settings(direction="sideways")
    assert anomaly.detect([]) == []


def test_scores_are_calibrated_on_normal_days():
    """The spread comes from the detector's own out-of-sample errors: on normal days the
    scores have about unit spread, so k means what it says."""
    scores = [v.score for seed in range(10) for v in anomaly.detect(weekly(140, seed=seed))[60:]]
    spread = 1.4826 * sorted(abs(s) for s in scores)[len(scores) // 2]
    assert 0.7 < spread < 1.3, spread


def test_formatting():
    assert anomaly.format_value(1204.4) == "1,204"
    assert anomaly.format_value(4048.671, "money") == "4,048.67"
    assert anomaly.format_value(0.0213, "rate") == "2.13 %"
    assert anomaly.format_value(None) == "n/a"
    tripled = anomaly.detect(weekly(84, changes={80: 3.0}))[80]
    assert re.search(r"are [23]\.\dx the usual Thursday", anomaly.explain("orders", tripled))
