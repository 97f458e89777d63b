"""Anomalies in daily series that a busy team can trust, each with an explanation.

Product metrics are weekly: weekends dip, Mondays climb. A z-score over the trailing days
flags every weekend (or, with the weekends inflating its spread, nothing). The detector here,
for each day ``t``:

1. works on ``y = log(value + offset)``, so changes are relative and the spread does not grow
   with the level;
2. takes the training days before ``t``: the days of the last ``season_window_days`` (56) for
   the weekday pattern, the last ``window_days`` (28) of them for the rest, leaving out days it
   already flagged (an outage must not become the new normal) and missing days;
3. needs ``min_history_days`` (21) training days, else says so instead of guessing;
4. removes the weekday pattern: each weekday's median minus the overall median, shrunk towards
   zero by how much of it is noise (a series without a weekly rhythm gets none; weekdays with
   fewer than ``min_per_weekday`` days get no adjustment);
5. takes the median of the last ``level_days`` (14) deseasonalised training values as the
   level: robust (a few outliers cannot drag it) and quick enough to follow growth;
6. learns from its own recent out-of-sample errors (``value - prediction``, log, over the last
   ``error_window_days`` (56) judged, unflagged days): their median is its bias (a median lags
   a trend; corrected for) and their MAD around it the spread. That spread includes every
   source of error the prediction really has (noise, the estimation error of the weekday
   pattern and the level), so scores are calibrated (for Gaussian noise about 1 normal day in
   2,000 lies beyond the default k = 3.5). Until ``min_history_days`` such errors exist, it
   uses what it would have predicted for each training day, widened a little for their number;
7. floors the spread (``floor_rel``, and for counts the Poisson noise ``1 / sqrt(expected)``),
   so a quiet stretch does not make every wiggle an anomaly;
8. flags ``t`` when ``|y_t - expected| > k x spread`` in the watched ``direction``.

Benchmarked against the trailing 14-day z-score and the same-weekday z-score in
``bench/anomaly.py`` (BENCHMARKS.md, "Anomaly detection").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Iterable

import numpy as np

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MAD_TO_SD = 1.4826


@dataclasses.dataclass(frozen=True)
class Settings:
    k: float = 3.5
    window_days: int = 28
    #: The level is the median of the last ``level_days`` deseasonalised days: short enough to
    #: follow growth (a 28-day median lags a trend by two weeks), long enough to be stable.
    level_days: int = 14
    season_window_days: int = 56
    error_window_days: int = 56
    min_history_days: int = 21
    min_per_weekday: int = 2
    #: ``both``, ``up`` (only rises are anomalies: error rates) or ``down``.
    direction: str = "both"
    #: The spread never drops below this (log units: about a relative change).
    floor_rel: float = 0.02
    #: Counts: the spread never drops below Poisson noise, 1 / sqrt(expected count).
    counts: bool = True
    #: ``log(value + offset)``: 1 for counts, a small number for rates and money.
    offset: float = 1.0
    #: Leave flagged days out of later training windows.
    exclude_flagged: bool = True

    def __post_init__(self):
        if self.direction not in ("both", "up", "down"):
            raise ValueError(f"direction {self.direction!r}: expected both, up or down")
        if self.k <= 0 or self.window_days < 2 or self.min_history_days < 2:
            raise ValueError("k must be > 0, window_days and min_history_days >= 2")


@dataclasses.dataclass(frozen=True)
class Verdict:
    day: dt.date
    value: float | None
    #: ``anomaly``, ``normal``, ``insufficient_history`` or ``missing``.
    status: str
    expected: float | None = None
    low: float | None = None
    high: float | None = None
    #: (log value - expected log) / spread; the sign says up or down.
    score: float | None = None
    #: True when the expected value used a weekday adjustment.
    seasonal: bool = False
    history_days: int = 0

    @property
    def change(self) -> float | None:
        """Relative change from the expected value (-0.31 = 31 % below)."""
        if self.value is None or not self.expected:
            return None
        return self.value / self.expected - 1.0

    @property
    def is_anomaly(self) -> bool:
        return self.status == "anomaly"


def detect(series: Iterable[tuple[dt.date, float | None]], settings: Settings = Settings()) -> list[Verdict]:
    """A verdict for every day from the first to the last of ``series`` (days absent from it are
    ``missing``). ``series`` is ``(date, value)`` pairs in any order; values must be >= 0."""
    values = {day: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
              for day, v in series}
    if not values:
        return []
    first, last = min(values), max(values)
    n = (last - first).days + 1
    raw = np.full(n, np.nan)
    for day, v in values.items():
        if v is not None:
            if v < 0:
                raise ValueError(f"{day}: value {v} is negative; the detector takes counts, rates and amounts >= 0")
            raw[(day - first).days] = v
    logs = np.log(raw + settings.offset)
    weekdays = (first.weekday() + np.arange(n)) % 7
    usable = ~np.isnan(logs)  # cleared for flagged days
    errors = np.full(n, np.nan)  # out-of-sample log errors of judged, unflagged days
    out = []
    for t in range(n):
        day = first + dt.timedelta(days=t)
        if np.isnan(raw[t]):
            out.append(Verdict(day, None, "missing"))
            continue
        season_lo = max(0, t - settings.season_window_days)
        season = np.flatnonzero(usable[season_lo:t]) + season_lo
        # The last window_days usable days: an outage left out of training pushes the window
        # back instead of starving it.
        recent = season[-settings.window_days:]
        if len(recent) < settings.min_history_days:
            out.append(Verdict(day, float(raw[t]), "insufficient_history", history_days=len(recent)))
            continue
        past = errors[max(0, t - settings.error_window_days):t]
        verdict, error = _judge(t, day, float(raw[t]), logs, weekdays, season, recent, past[~np.isnan(past)],
                                settings)
        if verdict.is_anomaly and settings.exclude_flagged:
            usable[t] = False
        else:
            errors[t] = error
        out.append(verdict)
    return out


def _median(a: np.ndarray) -> float:
    """np.median without its overhead (these arrays have at most a few dozen values)."""
    ordered = np.sort(a)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else float((ordered[mid - 1] + ordered[mid]) / 2)


def _robust_sd(deviations: np.ndarray) -> float:
    """The standard deviation of the deviations within 3 MADs of zero, rescaled for the cut
    (a normal cut at 3 sd keeps sd 0.9866). Robust like the MAD, but with about 2.5 times its
    statistical efficiency: a MAD of 56 errors is noisy enough to give the scores t-like tails
    (measured: 0.35 % of normal days beyond 3.5 instead of 0.05 %)."""
    mad = _MAD_TO_SD * _median(np.abs(deviations))
    if mad == 0:
        return 0.0
    kept = deviations[np.abs(deviations) <= 3 * mad]
    return float(np.sqrt(np.mean(kept ** 2))) / 0.9866 if len(kept) > 1 else mad


def _weekday_effects(logs: np.ndarray, weekdays: np.ndarray, days: np.ndarray, min_per_weekday: int,
                     with_shrink: bool = False):
    """Per weekday: the median of its days minus the overall median (0 with too few days),
    shrunk towards 0 by how much of the pattern is noise.

    With 4-8 days per weekday, each weekday's median is itself noisy; on a series without a
    weekly rhythm the raw pattern is pure noise and would only add error. The shrink factor
    ``1 - noise / (noise + signal)`` (James-Stein style; noise = the variance of a median of
    ``n`` days, pi/2 s^2 / n, with ``s`` the spread within weekdays) keeps a real pattern (weekend
    dips far above the noise: factor ~1) and drops an imagined one (factor ~0).
    """
    values, kinds = logs[days], weekdays[days]
    overall = _median(values)
    raw = np.zeros(7)
    counts = np.zeros(7)
    within = []
    for weekday in range(7):
        same = values[kinds == weekday]
        if len(same) >= min_per_weekday:
            raw[weekday] = _median(same) - overall
            counts[weekday] = len(same)
            within.append(same - _median(same))
    shrink = 0.0
    if within:
        deviations = np.abs(np.concatenate(within))
        n = counts[counts > 0]
        # MAD of the deviations from each weekday's own median, corrected for those medians.
        spread2 = (_MAD_TO_SD * _median(deviations)) ** 2 * float(np.mean(n / np.maximum(n - 1, 1)))
        noise = float(np.mean(math.pi / 2 * spread2 / n))
        signal = max(float(np.mean(raw[counts > 0] ** 2)) - noise, 0.0)
        shrink = signal / (signal + noise) if signal + noise > 0 else 0.0
    effects = raw * shrink
    return (effects, shrink) if with_shrink else effects


def _median_without(ordered: np.ndarray, rank: int) -> float:
    """The median of sorted ``ordered`` without its element at ``rank``, in O(1)."""
    n = len(ordered) - 1
    def at(k):  # k-th smallest of the remaining elements
        return ordered[k + 1] if k >= rank else ordered[k]
    return float(at(n // 2)) if n % 2 else float((at(n // 2 - 1) + at(n // 2)) / 2)


def _leave_one_out_errors(t, logs, weekdays, season, recent, s: Settings) -> np.ndarray:
    """Until the detector has errors of its own: what it would have predicted for each recent
    day, from the ``level_days`` before that day and a weekday pattern estimated without it.
    In-sample residuals would be too small (with 3-4 days per weekday, each weekday's median sits
    close to its own days), and residuals against today's level too large on a growing series."""
    effects, shrink = _weekday_effects(logs, weekdays, season, s.min_per_weekday, with_shrink=True)
    overall = _median(logs[season])
    deseasonalised = logs[season] - effects[weekdays[season]]
    ordered, rank = {}, {}
    for weekday in range(7):
        members = season[weekdays[season] == weekday]
        order = np.argsort(logs[members], kind="stable")
        ordered[weekday] = logs[members][order]
        rank.update((int(day), r) for r, day in enumerate(members[order]))
    errors = []
    for i in recent:
        before = deseasonalised[(season < i) & (season >= i - s.level_days)]
        if len(before) < 5:
            continue
        group = ordered[weekdays[i]]
        effect = 0.0
        if len(group) - 1 >= s.min_per_weekday:
            effect = shrink * (_median_without(group, rank[int(i)]) - overall)
        errors.append(logs[i] - effect - _median(before))
    return np.array(errors)


def _judge(t, day, value, logs, weekdays, season, recent, past_errors, s: Settings) -> tuple[Verdict, float]:
    effects = _weekday_effects(logs, weekdays, season, s.min_per_weekday)
    deseasonalised = logs[recent] - effects[weekdays[recent]]
    latest = deseasonalised[recent >= t - s.level_days]
    level = _median(latest if len(latest) else deseasonalised)
    if len(past_errors) >= s.min_history_days:
        errors, widen = past_errors, 1.0
    else:
        # A MAD of a few errors is itself uncertain: widened by 1 + 1/sqrt(n), which brings the
        # false-alert rate of the first weeks down to that of later ones (measured).
        errors = _leave_one_out_errors(t, logs, weekdays, season, recent, s)
        widen = 1 + 1 / math.sqrt(max(len(errors), 1))
    # The errors' median is the predictor's bias (a median lags a trend): corrected for, and the
    # spread measured around it.
    bias = _median(errors) if len(errors) else 0.0
    spread = _robust_sd(errors - bias) * widen if len(errors) else 0.0
    effect = float(effects[day.weekday()])
    base_log = level + effect
    expected_log = base_log + bias
    expected = max(math.exp(expected_log) - s.offset, 0.0)
    floor = s.floor_rel
    if s.counts:
        floor = max(floor, 1.0 / math.sqrt(max(expected, 1.0)))
    spread = max(spread, floor)
    value_log = math.log(value + s.offset)
    score = (value_log - expected_log) / spread
    anomalous = (score > s.k and s.direction in ("both", "up")) or (score < -s.k and s.direction in ("both", "down"))
    low = max(math.exp(expected_log - s.k * spread) - s.offset, 0.0)
    high = math.exp(expected_log + s.k * spread) - s.offset
    verdict = Verdict(day, value, "anomaly" if anomalous else "normal", expected=expected, low=low, high=high,
                      score=score, seasonal=effect != 0.0, history_days=len(recent))
    return verdict, value_log - base_log


# ---- explanations ----------------------------------------------------------------------------

def format_value(value: float | None, unit: str = "count") -> str:
    """``count``: 1,204; ``money``: 4,048.67; ``rate`` (a fraction): 2.1 %."""
    if value is None:
        return "n/a"
    if unit == "rate":
        return f"{value * 100:.2f} %" if value < 0.1 else f"{value * 100:.1f} %"
    if unit == "money":
        return f"{value:,.2f}"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.1f}".rstrip("0").rstrip(".")


def explain(label: str, verdict: Verdict, unit: str = "count", settings: Settings = Settings()) -> str:
    """One sentence a person can act on, e.g. "Tuesday's purchase events (612) are 49 % below
    the usual Tuesday (about 1,204; typical range 1,010–1,430)." ``label`` is plural."""
    weekday = WEEKDAYS[verdict.day.weekday()]
    if verdict.status == "insufficient_history":
        return (f"{label} on {verdict.day}: not judged, {verdict.history_days} days of history "
                f"(at least {settings.min_history_days} needed)")
    if verdict.status == "missing" or verdict.expected is None:
        return f"{label} on {verdict.day}: no value"
    usual = f"the usual {weekday}" if verdict.seasonal else "the usual level"
    change = verdict.change
    if change is None:
        relation = "above"
    elif change >= 1.0:
        relation = f"{change + 1:.1f}x"
    else:
        relation = f"{abs(change) * 100:.0f} % {'above' if change >= 0 else 'below'}"
    return (f"{weekday}'s {label} ({format_value(verdict.value, unit)}, {verdict.day}) are {relation} "
            f"{usual} (about {format_value(verdict.expected, unit)}; typical range "
            f"{format_value(verdict.low, unit)}–{format_value(verdict.high, unit)})")
