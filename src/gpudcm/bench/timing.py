"""One timing method for every contender: warm-up, then the median of N interleaved rounds.

A round times every contender once, back to back, in an order that rotates from round to round (so drift
and order effects spread evenly). Each timing repeats the call until it lasts at least `min_sample_s`
(the same number of calls in every round), and records seconds per call.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Fn = Callable[[], object]


def per_call(fn: Fn, number: int) -> float:
    """Seconds per call of `fn`, averaged over `number` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def calls_for(seconds: float, min_sample_s: float) -> int:
    """Calls per timing so one timing lasts at least `min_sample_s`, given one call takes `seconds`."""
    return max(1, math.ceil(min_sample_s / max(seconds, 1e-6)))


def interleaved(fns: Sequence[Fn], numbers: Sequence[int], rounds: int) -> list[list[float]]:
    """Per-contender lists of `rounds` seconds-per-call timings, taken round by round in rotating order."""
    n = len(fns)
    out: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):  # no gc.collect() between timings: it would slow whichever contender runs next
        for k in range(n):
            i = (k + r) % n
            out[i].append(per_call(fns[i], numbers[i]))
    return out


@dataclass
class Pair:
    """Per-round seconds per call of a baseline (a) and a contender (b), measured interleaved."""

    a: list[float]
    b: list[float]
    number: int  # calls per timing

    @property
    def a_ms(self) -> float:
        return statistics.median(self.a) * 1e3

    @property
    def b_ms(self) -> float:
        return statistics.median(self.b) * 1e3

    @property
    def ratio(self) -> float:
        """median(b) / median(a)."""
        return statistics.median(self.b) / statistics.median(self.a)

    def paired_quartiles(self) -> tuple[float, float]:
        """First and third quartile of the per-round ratios b/a (how noisy the ratio is)."""
        ratios = sorted(b / a for a, b in zip(self.a, self.b))
        if len(ratios) < 4:
            return ratios[0], ratios[-1]
        q = statistics.quantiles(ratios, n=4)
        return q[0], q[2]


def compare(a: Fn, b: Fn, rounds: int, min_sample_s: float) -> Pair:
    """Warm up `a` and `b`, then time them for `rounds` interleaved rounds (order alternating)."""
    a(), b()  # warm-up: imports, plugin look-up, page cache
    number = calls_for(min(per_call(a, 1), per_call(b, 1)), min_sample_s)
    ta, tb = interleaved([a, b], [number, number], rounds)
    return Pair(ta, tb, number)
