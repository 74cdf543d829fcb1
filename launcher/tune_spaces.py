"""The search of a tune: each tuned parameter's space (the SPACE grammar of `--search`) and
the algorithms that choose the trials' values from them.

    1..6            integers, both ends included     (1..10:3 every third: 1, 4, 7, 10)
    0.001..0.1      floats, uniform                  (0.1..0.9:0.2 a grid's steps)
    0.001..0.1:log  floats (or integers), log-uniform
    a,b,c           categorical: exactly these values, each typed by the parameter's default

Algorithms (the names Katib's are mapped from, `KATIB_ALGORITHMS`): `grid` (every
combination, in order) and `random` here; `tpe` is Optuna's TPESampler, `bayesian` a Gaussian
process (the bayesian-optimization package, as Katib's skopt one), never hand-written. Each
is seeded: the same seed, the same values (trials one at a time; trials side by side finish
in the order the machine decides, and the model-based algorithms learn in that order).
"""

from __future__ import annotations

import itertools
import math
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from cellpipe.converter.model import Parameter
from cellpipe.converter.params import ParameterError, typed_value

from .errors import UserError
from .vocabulary import TUNE_ALGORITHMS

ALGORITHMS: tuple[str, ...] = TUNE_ALGORITHMS
KATIB_ALGORITHMS: dict[str, str] = {
    "grid": "grid",
    "random": "random",
    "bayesian": "bayesianoptimization",
    "tpe": "tpe",
}
_NUMBER_KINDS = ("int", "float")


@dataclass(frozen=True)
class Space:
    """One parameter's space: a range (`low..high`, maybe `:log` or `:STEP`) or choices."""

    name: str
    kind: str  # "int", "float" or "categorical"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    text: str = ""

    def grid(self) -> list[Any]:
        """Every value a grid takes, in order; a UserError for a range with no steps."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "float" and self.step is None:
            raise UserError(
                f"--search {self.name}={self.text}: a grid over a float range needs its step "
                f"({self.text}:STEP, e.g. {_example_step(self)}) or the values (a,b,c)",
                reason="bad_search",
            )
        if self.log:
            raise UserError(
                f"--search {self.name}={self.text}: a grid cannot take a log range; list the "
                "values (a,b,c)",
                reason="bad_search",
            )
        step = self.step or 1
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        values = [self.low + i * step for i in range(count)]
        if self.kind == "int":
            return [round(v) for v in values]
        return [round(v, 12) for v in values]

    def katib(self) -> tuple[str, dict[str, Any]]:
        """Katib's parameterType and feasibleSpace (as strings, as Katib takes them)."""
        if self.kind == "categorical":
            numbers = all(
                isinstance(c, (int, float)) and not isinstance(c, bool) for c in self.choices
            )
            return ("discrete" if numbers else "categorical"), {
                "list": [_katib_text(c) for c in self.choices]
            }
        space: dict[str, Any] = {
            "min": _katib_text(self.low, self.kind),
            "max": _katib_text(self.high, self.kind),
        }
        if self.step is not None:
            space["step"] = _katib_text(self.step, self.kind)
        if self.log:
            space["distribution"] = "logUniform"
        return ("int" if self.kind == "int" else "double"), space


def _example_step(space: Space) -> str:
    return f"{(space.high - space.low) / 4:g}"


def _katib_text(value: Any, kind: str = "") -> str:
    if kind == "int" or (isinstance(value, float) and kind == "int"):
        return str(int(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- the grammar ---------------------------------------------------------------------------


def parse_search(
    assignments: list[str], parameters: dict[str, Parameter], notebook: str
) -> list[Space]:
    """`NAME=SPACE` texts, each checked against its pipeline parameter's type."""
    if not assignments:
        raise UserError(f"{notebook}: a tune needs --search NAME=SPACE", reason="bad_search")
    spaces: dict[str, Space] = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        name, text = name.strip(), text.strip()
        if not equals or not name or not text:
            raise UserError(
                f"--search {assignment!r}: write NAME=SPACE (e.g. epochs=1..6, lr=0.001..0.1:log, "
                "optimizer=adam,sgd)",
                reason="bad_search",
            )
        parameter = parameters.get(name)
        if parameter is None:
            known = ", ".join(parameters) or "none: tag a cell `parameters`"
            raise UserError(
                f"{notebook}: --search {name}: the notebook has no parameter {name!r} "
                f"(its parameters: {known})",
                reason="bad_search",
            )
        if name in spaces:
            raise UserError(f"--search {name} is given twice", reason="bad_search")
        spaces[name] = parse_space(parameter, text, notebook)
    return list(spaces.values())


def parse_space(parameter: Parameter, text: str, notebook: str) -> Space:
    """One SPACE of `parameter` (typed by its default)."""
    name = parameter.name
    where = f"{notebook}: --search {name}={text}"
    if ".." in text and "," not in text:
        return _range(parameter, text, where)
    choices = []
    for item in text.split(","):
        try:
            choices.append(typed_value(parameter, item.strip()))
        except ParameterError as exc:
            raise UserError(f"{where}: {exc}", reason="bad_search") from None
    return Space(name, "categorical", choices=tuple(choices), text=text)


def _range(parameter: Parameter, text: str, where: str) -> Space:
    if parameter.type not in _NUMBER_KINDS:
        raise UserError(
            f"{where}: parameter {parameter.name!r} is a {parameter.type} (its default is "
            f"{parameter.default!r}); a range is for numbers: list its values (a,b,c)",
            reason="bad_search",
        )
    bounds, _, modifier = text.partition(":")
    low_text, _, high_text = bounds.partition("..")
    low, high = _number(low_text, where), _number(high_text, where)
    log = modifier.strip() == "log"
    step = None if log or not modifier else _number(modifier, where)
    kind = parameter.type
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise UserError(
            f"{where}: parameter {parameter.name!r} is an int (its default is "
            f"{parameter.default!r}); give whole numbers (e.g. 1..6)",
            reason="bad_search",
        )
    if not low < high:
        raise UserError(
            f"{where}: the range's low end must be below its high end", reason="bad_search"
        )
    if log and low <= 0:
        raise UserError(f"{where}: a log range needs a low end above 0", reason="bad_search")
    if step is not None and step <= 0:
        raise UserError(f"{where}: the step must be above 0", reason="bad_search")
    return Space(parameter.name, kind, low, high, log, step, text=text)


def _number(text: str, where: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise UserError(
            f"{where}: {text.strip()!r} is not a number (write LOW..HIGH, LOW..HIGH:log or "
            "LOW..HIGH:STEP)",
            reason="bad_search",
        ) from None
    if not math.isfinite(value):
        raise UserError(f"{where}: {text.strip()!r} is not a finite number", reason="bad_search")
    return value


# --- the algorithms ---------------------------------------------------------------------------


class Suggester(Protocol):
    """Chooses the trials' values; `tell` hears each trial's objective (None: it failed)."""

    def ask(self) -> dict[str, Any] | None: ...  # None: nothing left to try

    def tell(self, parameters: dict[str, Any], value: float | None) -> None: ...


class GridSuggester:
    """Every combination, in order (the first space varies slowest)."""

    def __init__(self, spaces: list[Space]) -> None:
        self.names = [s.name for s in spaces]
        self.points: Iterator[tuple[Any, ...]] = itertools.product(*(s.grid() for s in spaces))

    def ask(self) -> dict[str, Any] | None:
        point = next(self.points, None)
        return None if point is None else dict(zip(self.names, point, strict=True))

    def tell(self, parameters: dict[str, Any], value: float | None) -> None:
        pass


class RandomSuggester:
    """Values drawn independently, uniformly (log-uniformly with `:log`), seeded."""

    def __init__(self, spaces: list[Space], seed: int | None) -> None:
        self.spaces = spaces
        self.random = random.Random(seed)

    def ask(self) -> dict[str, Any] | None:
        return {s.name: self._draw(s) for s in self.spaces}

    def _draw(self, space: Space) -> Any:
        if space.kind == "categorical":
            return self.random.choice(space.choices)
        if space.step is not None:
            return self.random.choice(space.grid())
        if space.log:
            value = math.exp(self.random.uniform(math.log(space.low), math.log(space.high)))
        elif space.kind == "int":
            return self.random.randint(int(space.low), int(space.high))
        else:
            value = self.random.uniform(space.low, space.high)
        return round(value) if space.kind == "int" else value

    def tell(self, parameters: dict[str, Any], value: float | None) -> None:
        pass


class TpeSuggester:
    """Optuna's TPESampler through its ask-and-tell interface (failed trials told as failed)."""

    def __init__(self, spaces: list[Space], seed: int | None, maximize: bool) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.study = optuna.create_study(
            direction="maximize" if maximize else "minimize",
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        self.distributions = {s.name: _optuna_distribution(optuna, s) for s in spaces}
        self.asked: list[tuple[dict[str, Any], Any]] = []

    def ask(self) -> dict[str, Any] | None:
        trial = self.study.ask(self.distributions)
        self.asked.append((dict(trial.params), trial))
        return dict(trial.params)

    def tell(self, parameters: dict[str, Any], value: float | None) -> None:
        found = next((t for p, t in self.asked if p == parameters), None)
        if found is None:
            return
        self.asked = [(p, t) for p, t in self.asked if t is not found]
        state = self.optuna.trial.TrialState
        if value is None or not math.isfinite(value):
            self.study.tell(found, state=state.FAIL)
        else:
            self.study.tell(found, value)


def _optuna_distribution(optuna: Any, space: Space) -> Any:
    distributions = optuna.distributions
    if space.kind == "categorical":
        return distributions.CategoricalDistribution(list(space.choices))
    if space.kind == "int":
        return distributions.IntDistribution(
            int(space.low), int(space.high), log=space.log, step=int(space.step or 1)
        )
    return distributions.FloatDistribution(space.low, space.high, log=space.log, step=space.step)


class BayesianSuggester:
    """A Gaussian process over the spaces (bayesian-optimization's BayesianOptimization, its
    own acquisition), seeded. Log ranges are searched over their logarithm; a failed trial
    teaches it nothing (as Katib's bayesianoptimization skips failed observations)."""

    def __init__(self, spaces: list[Space], seed: int | None, maximize: bool) -> None:
        from bayes_opt import BayesianOptimization

        self.spaces = {s.name: s for s in spaces}
        self.sign = 1.0 if maximize else -1.0
        with warnings.catch_warnings():  # its integer and categorical bounds are "experimental"
            warnings.simplefilter("ignore", UserWarning)
            self.optimizer = BayesianOptimization(
                f=None,
                pbounds={s.name: _bounds(s) for s in spaces},
                random_state=seed,
                verbose=0,
                allow_duplicate_points=True,
            )
        self.asked: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def ask(self) -> dict[str, Any] | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            raw = self.optimizer.suggest()
        chosen = {name: _from_bounds(self.spaces[name], value) for name, value in raw.items()}
        self.asked.append((chosen, raw))
        return chosen

    def tell(self, parameters: dict[str, Any], value: float | None) -> None:
        found = next((raw for p, raw in self.asked if p == parameters), None)
        if found is None or value is None or not math.isfinite(value):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.optimizer.register(params=found, target=self.sign * value)


def _bounds(space: Space) -> Any:
    """Its bounds for BayesianOptimization: choices (and a range's steps) by their index, so
    numbers are never read as a range's ends."""
    if space.kind == "categorical" or space.step is not None:
        return (0, len(_choices(space)) - 1, int)
    if space.log:
        return (math.log(space.low), math.log(space.high))
    if space.kind == "int":
        return (int(space.low), int(space.high), int)
    return (space.low, space.high)


def _choices(space: Space) -> list[Any]:
    return list(space.choices) if space.kind == "categorical" else space.grid()


def _from_bounds(space: Space, value: Any) -> Any:
    if space.kind == "categorical" or space.step is not None:
        return _choices(space)[round(float(value))]
    number = float(value)
    if space.log:
        number = math.exp(number)
    return round(number) if space.kind == "int" else number


def suggester(
    algorithm: str, spaces: list[Space], *, seed: int | None, maximize: bool
) -> Suggester:
    """The algorithm `algorithm` over `spaces`."""
    if algorithm == "grid":
        return GridSuggester(spaces)
    if algorithm == "random":
        return RandomSuggester(spaces, seed)
    if algorithm == "tpe":
        return TpeSuggester(spaces, seed, maximize)
    if algorithm == "bayesian":
        return BayesianSuggester(spaces, seed, maximize)
    raise UserError(
        f"--algorithm {algorithm}: use one of {', '.join(ALGORITHMS)}", reason="bad_search"
    )


def grid_size(spaces: list[Space]) -> int:
    return math.prod(len(s.grid()) for s in spaces)
