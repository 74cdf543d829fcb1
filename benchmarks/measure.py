"""How every benchmark reports a figure, so that it tells the truth on a noisy machine.

A figure is a list of samples (seconds, bytes...) from several runs: it is printed with its
minimum, median, maximum and spread, and a goal is judged PASS or FAIL from the minimum (the
run the machine disturbed least), never from one sample. A figure whose spread is too wide to
judge says so. Each script prints the machine's load before and after, so a reader can tell a
busy machine from a slow program.

    from measure import Figure, Goal, Load, timed_runs
    load = Load.now()
    figure = Figure("cellpipe compile (whole process)", timed_runs(lambda: ..., runs=7), "s")
    print(figure.line())
    print(Goal(figure, "<=", 0.5).line())
    print(load.line())
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# A spread (max - min) / median above this is too wide to judge a goal by: said, not hidden.
WIDE_SPREAD = 0.5


@dataclass(frozen=True)
class Figure:
    """A measured quantity: its samples and their unit ("s", "ms", "MiB", "x", "B")."""

    label: str
    samples: Sequence[float]
    unit: str = "s"

    @property
    def minimum(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def maximum(self) -> float:
        return max(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median: 0.1 means the runs differ by a tenth of the median."""
        median = self.median
        return (self.maximum - self.minimum) / median if median else 0.0

    @property
    def too_wide(self) -> bool:
        return len(self.samples) > 1 and self.spread > WIDE_SPREAD

    def line(self, width: int = 52) -> str:
        warning = "  (spread too wide to judge: a busy machine?)" if self.too_wide else ""
        return (
            f"   {self.label:<{width}} min {_number(self.minimum)}{self.unit:<3} "
            f"median {_number(self.median)}{self.unit:<3} "
            f"max {_number(self.maximum)}{self.unit:<3} "
            f"spread {self.spread:4.0%} n={len(self.samples)}{warning}"
        )


@dataclass(frozen=True)
class Goal:
    """A figure's goal: PASS or FAIL from its minimum (`better` is "<=" or ">=")."""

    figure: Figure
    better: str
    target: float
    reference: str = ""  # what the target stands beside ("Kale 2.3: 33 s")

    @property
    def met(self) -> bool:
        value = self.value
        return value <= self.target if self.better == "<=" else value >= self.target

    @property
    def value(self) -> float:
        """The figure's best run: its minimum, or its maximum where more is better."""
        return self.figure.minimum if self.better == "<=" else self.figure.maximum

    def line(self, width: int = 52) -> str:
        verdict = "PASS" if self.met else "FAIL"
        unsure = " (spread too wide to judge)" if self.figure.too_wide else ""
        beside = f"  [{self.reference}]" if self.reference else ""
        return (
            f"   {verdict}  {self.figure.label:<{width}} {_number(self.value)}{self.figure.unit:<3}"
            f" goal {self.better} {_number(self.target).strip()}{self.figure.unit}"
            f"{beside}{unsure}"
        )


@dataclass
class Load:
    """The machine's load average when a benchmark starts, to print beside the end's."""

    before: float = field(default_factory=lambda: os.getloadavg()[0])

    @classmethod
    def now(cls) -> Load:
        return cls()

    def line(self) -> str:
        after = os.getloadavg()[0]
        cores = os.cpu_count() or 1
        busy = " (busy: figures are inflated)" if max(self.before, after) > cores * 0.75 else ""
        return f"load average before {self.before:.2f}, after {after:.2f} on {cores} cores{busy}"


def timed_runs(action: Callable[[], object], runs: int) -> list[float]:
    """Wall seconds of `action`, once per run."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:8.1f}"
    if abs(value) >= 1:
        return f"{value:8.2f}"
    return f"{value:8.3f}"
