"""A sweep's search space: which run settings each trial may change, and over what values.

The JSON form (``--space FILE``, and the study's own record) maps a parameter to a fixed value, to
``{"choices": [...]}``, or to a range ``{"low": a, "high": b}`` (``"log": true`` for a log scale)::

    {"backbone": {"choices": ["MobileNetV2", "EfficientNetB0"]},
     "learning_rate": {"low": 1e-4, "high": 1e-2, "log": true},
     "fine_tune_blocks": {"low": 1, "high": 4},
     "augmentation": {"low": 0.0, "high": 0.3},
     "epochs": 5}

``augmentation`` is one strength for random zoom and contrast (0: none of them); every other name is
the run setting of that name. Every value a range or choice can take is checked against the settings'
own limits when the space is read, so a bad file is refused before any trial runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from tlstudio.core.settings import SWEEP_IMAGE_SIZES, TrainSettings

Value = str | int | float  # a parameter's value (a backbone, a whole number, a number)

# the parameters a space may name, and the type of their values
PARAMS: dict[str, type] = {
    "backbone": str,
    "learning_rate": float,
    "fine_tune_blocks": int,
    "augmentation": float,
    "image_size": int,
    "dropout": float,
    "epochs": int,
    "fine_tune_epochs": int,
}
DEFAULT_RANGES = {  # the default space besides the backbone and the image size
    "fine_tune_blocks": {"low": 1, "high": 4},
    "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
    "augmentation": {"low": 0.0, "high": 0.3},
}


class SpaceError(ValueError):
    """A search space that cannot be used, in one line."""


@dataclass(frozen=True)
class Param:
    """One parameter: a list of choices (one choice: a fixed value) or a numeric range."""

    name: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def fixed(self) -> bool:
        """Whether the parameter has one value only."""
        return self.choices is not None and len(self.choices) == 1

    def sample(self, trial):
        """This parameter's value for an Optuna trial (a fixed value is not a trial parameter)."""
        if self.choices is not None:
            return self.choices[0] if self.fixed else trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None  # (no choices: a range, see _param)
        if PARAMS[self.name] is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def extremes(self) -> tuple:
        """The values that show whether the whole parameter is valid."""
        return self.choices if self.choices is not None else (self.low, self.high)

    def to_json(self) -> object:
        """The JSON form of the module docstring."""
        if self.choices is not None:
            return self.choices[0] if self.fixed else {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high} | ({"log": True} if self.log else {})


@dataclass(frozen=True)
class SearchSpace:
    """The parameters of a sweep, in a fixed order."""

    params: tuple[Param, ...]

    def sample(self, trial) -> dict[str, Value]:
        """Every parameter's value for a trial (fixed ones included)."""
        return {p.name: p.sample(trial) for p in self.params}

    def to_dict(self) -> dict[str, object]:
        """The JSON form (what ``parse_space`` reads)."""
        return {p.name: p.to_json() for p in self.params}

    def get(self, name: str) -> Param | None:
        """The parameter of that name, if the space has one."""
        return next((p for p in self.params if p.name == name), None)

    def backbones(self) -> list[str]:
        """The backbones trials may use (empty: the base settings' backbone)."""
        p = self.get("backbone")
        return list(p.choices) if p is not None and p.choices is not None else []  # (text: choices only)


def apply(base: TrainSettings, values: dict[str, Value]) -> TrainSettings:
    """The run settings of a trial: ``base`` with the space's values put in.

    Raises:
        ValueError: a value the settings refuse (naming the setting).
    """
    changes: dict[str, object] = {}
    for name, value in values.items():
        if name == "augmentation":
            changes["augmentation"] = replace(base.augmentation, zoom=float(value), contrast=float(value))
        elif name == "dropout":
            changes["head"] = replace(base.head, dropout=float(value))
        else:
            changes[name] = value
    return base.but(**changes)


def show_values(values: dict[str, Value]) -> str:
    """A trial's values in a line: a backbone file by its name, numbers to three figures."""
    return ", ".join(
        f"{k}={Path(str(v)).name if k == 'backbone' else f'{v:.3g}' if isinstance(v, float) else v}"
        for k, v in values.items()
    )


def parse_space(data: object, base: TrainSettings) -> SearchSpace:
    """A search space from its JSON form, every value checked against the settings' limits.

    Args:
        data: the parsed JSON (an object).
        base: the run settings the trials start from.

    Returns:
        The space.

    Raises:
        SpaceError: the first problem, in one line.
    """
    if not isinstance(data, dict) or not data:
        raise SpaceError('a search space is a JSON object of parameters, e.g. {"learning_rate": ...}')
    params = []
    for name, spec in data.items():
        if name not in PARAMS:
            raise SpaceError(f"unknown parameter '{name}' (known: {', '.join(PARAMS)})")
        param = _param(name, spec)
        for value in param.extremes():
            try:
                apply(base, {name: value})
            except ValueError as err:
                raise SpaceError(f"{name}: {value!r} is refused: {err}") from None
        params.append(param)
    return SearchSpace(tuple(params))


def load_space(path: str | Path, base: TrainSettings) -> SearchSpace:
    """``parse_space`` of a JSON file; a missing or unreadable file is a ``SpaceError`` too."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SpaceError(f"{path}: {err.strerror or err}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise SpaceError(f"{path} is not JSON: {err}") from None
    try:
        return parse_space(data, base)
    except SpaceError as err:
        raise SpaceError(f"{path}: {err}") from None


def default_space(candidates: list[str], base: TrainSettings, sizes: tuple[int, ...] | None) -> SearchSpace:
    """What matters in transfer learning: the backbone, the blocks fine-tuned, the learning rate, the
    augmentation strength, and the image size when every candidate takes ``sizes``.

    Args:
        candidates: the backbones (one: fixed).
        base: the run settings the trials start from.
        sizes: image sizes to try (None: each backbone's own).
    """
    data: dict[str, object] = {"backbone": {"choices": list(candidates)}}
    data |= DEFAULT_RANGES
    if sizes and not base.image_size:
        data["image_size"] = {"choices": list(sizes)}
    return parse_space(data, base)


def sizes_for(specs) -> tuple[int, ...] | None:
    """The default space's image sizes that every backbone of ``specs`` takes (None: one of them
    has a fixed input, or none is left)."""
    if any(s.fixed_size or not s.knows_min_size for s in specs):  # (a file or SavedModel: its own size)
        return None
    least = max((s.min_size for s in specs), default=0)
    sizes = tuple(n for n in SWEEP_IMAGE_SIZES if n >= least)
    return sizes or None


def _param(name: str, spec: object) -> Param:
    kind = PARAMS[name]
    if not isinstance(spec, dict):
        return Param(name, choices=(_value(name, spec, kind),))
    keys = set(spec)
    if keys == {"choices"}:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{name}: choices must be a non-empty list")
        values = tuple(_value(name, v, kind) for v in choices)
        if len(set(values)) != len(values):
            raise SpaceError(f"{name}: a choice is listed twice")
        return Param(name, choices=values)
    if kind is str:
        raise SpaceError(f'{name}: give a value or {{"choices": [...]}}')
    if not {"low", "high"} <= keys or not keys <= {"low", "high", "log"}:
        raise SpaceError(f'{name}: give a value, {{"choices": [...]}} or {{"low": a, "high": b}}')
    low, high = _value(name, spec["low"], kind), _value(name, spec["high"], kind)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{name}: log must be true or false")
    if not low < high:
        raise SpaceError(f"{name}: low must be less than high")
    if log and low <= 0:
        raise SpaceError(f"{name}: a log scale needs low above 0")
    return Param(name, low=low, high=high, log=log)


def _value(name: str, value: object, kind: type):
    ok = (
        isinstance(value, str)
        if kind is str
        else isinstance(value, int) and not isinstance(value, bool)
        if kind is int
        else isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    )
    if not ok:
        words = {str: "a text", int: "a whole number", float: "a number"}[kind]
        raise SpaceError(f"{name}: {value!r} is not {words}")
    if kind is float and isinstance(value, (int, float)):  # (ok: always a number here)
        return float(value)
    return value
