"""Anomaly detection on generated daily series with known anomalies: precision, recall and the
false-alert rate of Strata's detector next to the usual baselines, all in the same run.

    .venv/bin/python bench/anomaly.py [--series 400] [--days 168] [--seed 11]

Series: a level between ~50 and ~20,000 a day (log-uniform), a weekly pattern (weekend dip of
20-50 %, smaller per-weekday wobbles), a slow trend of up to +-30 % over the period,
multiplicative noise (sd 3-6 %) and Poisson noise on top. Anomalies are injected on ~2 % of the
days: scenario ``drops`` multiplies the day by 0.75 (the -25 % drops of the issue); scenario
``mixed`` draws -50 % days, +60 % days and two-day -40 % outages; scenario ``growth`` is
``drops`` on series that grow or shrink by up to e^1 (x2.7) over the period.

Contenders (a day counts from day 57 on, when every method has its history):

* ``z14``: z-score over the trailing 14 days, |z| > 3;
* ``weekday_z``: z-score over the same weekday of the previous 8 weeks, |z| > 3;
* ``reference``: the method the issue measured: weekday-median deseasonalised series, 28-day
  median/MAD on log values, k = 4 (no exclusion of flagged days, no floors);
* ``strata``: ``strata_monitor.anomaly.detect`` with its defaults (k = 3.5 on a spread taken
  from its own out-of-sample errors, a 56-day weekday pattern, flagged days left out of
  training, spread floors).

Besides each method at its own threshold, the last column gives its recall at the threshold
that flags exactly 0.5 % of the normal days: the ranking of the methods with the alert budget
held equal. (For ``strata`` the scores come from the default run, whose flagged days were
left out of training.)

Prints one table per scenario (markdown, for BENCHMARKS.md) and the detector's time per series.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from strata_monitor import anomaly  # noqa: E402

START = dt.date(2026, 1, 5)  # a Monday
EVALUATE_FROM = 56


@dataclasses.dataclass
class Series:
    values: np.ndarray
    injected: np.ndarray  # bool per day


def generate(rng: np.random.Generator, days: int, scenario: str) -> Series:
    level = math.exp(rng.uniform(math.log(50), math.log(20_000)))
    weekday = 1 + rng.normal(0, 0.04, 7)
    weekday[5:] *= 1 - rng.uniform(0.2, 0.5)
    steep = 1.0 if scenario == "growth" else 0.3
    trend = np.linspace(0, rng.uniform(-steep, steep), days)
    noise_sd = rng.uniform(0.03, 0.06)
    mean = level * weekday[np.arange(days) % 7] * np.exp(trend + rng.normal(0, noise_sd, days))
    injected = np.zeros(days, dtype=bool)
    factor = np.ones(days)
    day = 0
    while day < days:
        if rng.random() < 0.02:
            if scenario in ("drops", "growth"):
                factor[day], injected[day] = 0.75, True
            else:
                kind = rng.integers(3)
                if kind == 0:
                    factor[day], injected[day] = 0.5, True
                elif kind == 1:
                    factor[day], injected[day] = 1.6, True
                else:
                    factor[day:day + 2], injected[day:day + 2] = 0.6, True
                    day += 1
        day += 1
    values = rng.poisson(mean * factor).astype(float)
    return Series(values, injected)


def z14(values: np.ndarray, t: int) -> float:
    window = values[t - 14:t]
    sd = window.std(ddof=1)
    return abs(values[t] - window.mean()) / sd if sd > 0 else 0.0


def weekday_z(values: np.ndarray, t: int) -> float:
    window = values[t - 56:t][::-1][6::7]  # the same weekday, 1..8 weeks back
    sd = window.std(ddof=1)
    return abs(values[t] - window.mean()) / sd if sd > 0 else 0.0


def reference(values: np.ndarray, t: int) -> float:
    """The issue's method, as stated: no exclusion, no floors, 28 days for everything."""
    y = np.log(values[t - 28:t] + 1)
    weekdays = np.arange(t - 28, t) % 7
    overall = np.median(y)
    effect = {w: np.median(y[weekdays == w]) - overall for w in range(7)}
    deseasonalised = y - np.array([effect[w] for w in weekdays])
    level = np.median(deseasonalised)
    mad = 1.4826 * np.median(np.abs(deseasonalised - level))
    return abs(math.log(values[t] + 1) - level - effect[t % 7]) / mad if mad > 0 else 0.0


def strata(values: np.ndarray, settings: anomaly.Settings) -> list[anomaly.Verdict]:
    return anomaly.detect([(START + dt.timedelta(days=i), v) for i, v in enumerate(values)], settings)


#: name -> (threshold on |score|, description)
THRESHOLDS = {"z14": 3.0, "weekday_z": 3.0, "reference": 4.0}
FALSE_ALERT_BUDGET = 0.005


@dataclasses.dataclass
class Scores:
    normal: list = dataclasses.field(default_factory=list)
    injected: list = dataclasses.field(default_factory=list)
    flagged_normal: int = 0
    flagged_injected: int = 0

    def row(self, name: str) -> str:
        tp, fp = self.flagged_injected, self.flagged_normal
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / len(self.injected)
        false_alerts = fp / len(self.normal)
        # The threshold that flags FALSE_ALERT_BUDGET of the normal days, and its recall.
        threshold = float(np.quantile(self.normal, 1 - FALSE_ALERT_BUDGET))
        matched = float(np.mean(np.array(self.injected) > threshold))
        return (f"| `{name}` | {precision * 100:.1f} % | {recall * 100:.1f} % | {false_alerts * 100:.2f} % "
                f"| {tp} | {fp} | {matched * 100:.1f} % |")


def run(scenario: str, n_series: int, days: int, seed: int) -> tuple[dict[str, Scores], float, int]:
    rng = np.random.default_rng(seed)
    settings = anomaly.Settings()
    scores = {name: Scores() for name in ("z14", "weekday_z", "reference", "strata")}
    detector_s = 0.0
    for _ in range(n_series):
        s = generate(rng, days, scenario)
        started = time.perf_counter()
        ours = strata(s.values, settings)
        detector_s += time.perf_counter() - started
        for t in range(EVALUATE_FROM, days):
            truth = bool(s.injected[t])
            results = {name: (fn(s.values, t), THRESHOLDS[name])
                       for name, fn in (("z14", z14), ("weekday_z", weekday_z), ("reference", reference))}
            results["strata"] = (abs(ours[t].score or 0.0), settings.k)
            for name, (score, threshold) in results.items():
                bucket = scores[name]
                (bucket.injected if truth else bucket.normal).append(score)
                if score > threshold:
                    if truth:
                        bucket.flagged_injected += 1
                    else:
                        bucket.flagged_normal += 1
    return scores, detector_s / n_series, len(scores["strata"].injected)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=400)
    parser.add_argument("--days", type=int, default=168)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    if args.days <= EVALUATE_FROM + 7:
        parser.error(f"--days must be above {EVALUATE_FROM + 7}")
    print(f"{args.series} series x {args.days} days per scenario, seed {args.seed}; "
          f"days {EVALUATE_FROM + 1}..{args.days} evaluated")
    for scenario in ("drops", "mixed", "growth"):
        scores, per_series_s, injected = run(scenario, args.series, args.days, args.seed)
        print(f"\n### Scenario `{scenario}` ({injected} injected anomalous days)\n")
        print("| method | precision | recall | false-alert rate | true alerts | false alerts "
              f"| recall at {FALSE_ALERT_BUDGET * 100:.1f} % false alerts |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, score in scores.items():
            print(score.row(name))
        print(f"\n`strata` detector: {per_series_s * 1000:.1f} ms per {args.days}-day series")
    return 0


if __name__ == "__main__":
    sys.exit(main())
