"""The search space: defaults, the plugin's narrowing, the user's overrides, and sampling.

Precedence, lowest first: :data:`DEFAULT_SPACE`, the architecture's ``search_space``, then the
user's ``--space`` entries (``lr=1e-5:1e-1:log``, ``batch_size=32,64``, ``dropout=0.3``) or a
TOML file of them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import optuna

from tuner.contract import (
    OPTIMIZERS,
    SCHEDULERS,
    Architecture,
    Choice,
    Fixed,
    FloatRange,
    Hyperparameters,
    IntRange,
    Param,
)
from tuner.errors import UsageError
from tuner.storage.records import ZERO_SWITCH

#: The default space. Ranges are wide enough for every builtin model and narrow enough that
#: a 20-trial study is not mostly diverging learning rates.
DEFAULT_SPACE: dict[str, Param] = {
    "lr": FloatRange(1e-5, 1e-1, log=True),
    "batch_size": Choice((32, 64, 128, 256, 512)),
    "weight_decay": FloatRange(1e-6, 1e-2, log=True, or_zero=True),
    "optimizer": Choice(OPTIMIZERS),
    "dropout": FloatRange(0.0, 0.7),
    "plateau_factor": FloatRange(0.1, 0.7),
    "plateau_patience": IntRange(0, 3),
    "plateau_threshold": FloatRange(1e-4, 1e-2, log=True),
    "plateau_cooldown": IntRange(0, 2),
    "plateau_min_lr": FloatRange(1e-7, 1e-4, log=True, or_zero=True),
}

#: Fields of :class:`Hyperparameters` that are not searched unless the user asks.
_NOT_SEARCHED = {"momentum": 0.9, "scheduler": "plateau"}
_INT_FIELDS = {"batch_size", "plateau_patience", "plateau_cooldown", "step_size", "epochs"}
_HP_FIELDS = {f.name for f in dataclasses.fields(Hyperparameters)} - {"extra", "epochs"}


def build_space(arch: Architecture, overrides: Mapping[str, Param] | None = None) -> dict[str, Param]:
    """The effective space of a study for ``arch``, with the user's ``overrides`` on top."""
    space = dict(DEFAULT_SPACE)
    if not arch.has_dropout:
        space.pop("dropout")
    space.update(arch.search_space)
    for name, param in (overrides or {}).items():
        if name not in space and name not in _HP_FIELDS:
            known = sorted(set(space) | _HP_FIELDS)
            raise UsageError(f"--space: unknown hyperparameter {name!r}; known: {', '.join(known)}")
        if name == "dropout" and not arch.has_dropout:
            if param == Fixed(None):  # "no dropout", as `best --json` says of such a model
                continue
            raise UsageError("--space: this architecture has no dropout to search")
        space[name] = param
    return space


def validate_param(name: str, param: Param) -> None:
    """Raise :class:`UsageError` for a range no trial could sample from or train with."""
    if isinstance(param, FloatRange | IntRange):
        if param.low > param.high:
            raise UsageError(f"--space {name}: low {param.low} is above high {param.high}")
        if param.log and param.low <= 0:
            raise UsageError(f"--space {name}: a log range needs low > 0, got {param.low}")
        values: Iterable[Any] = (param.low, param.high)
    elif isinstance(param, Choice):
        if not param.options:
            raise UsageError(f"--space {name}: no choices given")
        values = param.options
    else:
        values = (param.value,)
    for value in values:
        _check_value(name, value)


_STR_FIELDS = {"optimizer", "scheduler"}
_EXAMPLE = {"lr": "lr=0.01", "batch_size": "batch_size=64", "optimizer": "optimizer=adam",
            "scheduler": "scheduler=plateau"}


_OPTIONAL_FIELDS = {"dropout"}  # None (written none) means: no dropout layer is used


def _check_kind(name: str, value: Any) -> None:
    """A value of the wrong kind for a builtin hyperparameter names the key, the value and the
    kind it takes (plugin-specific names are checked by the plugin)."""
    if value is None:
        if name in _HP_FIELDS and name not in _OPTIONAL_FIELDS:
            raise UsageError(f"--space {name}: cannot be none; only {', '.join(sorted(_OPTIONAL_FIELDS))} can be off")
        return
    if name in _STR_FIELDS:
        ok, kind = isinstance(value, str), "a name"
    elif name in _INT_FIELDS:
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif name in _HP_FIELDS:
        ok, kind = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    else:
        return
    if not ok:
        example = _EXAMPLE.get(name, f"{name}={'64' if name in _INT_FIELDS else '0.5'}")
        raise UsageError(f"--space {name}: {value!r} is not {kind}; {name} takes {kind} (e.g. {example})")


def _check_value(name: str, value: Any) -> None:
    _check_kind(name, value)
    if value is None:
        return
    positive = {"lr", "batch_size", "step_size", "plateau_threshold"}
    non_negative = {"weight_decay", "momentum", "plateau_min_lr", "plateau_patience",
                    "plateau_cooldown", "dropout"}
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"--space {name}: {value} is not a finite number")
    if name in positive and not value > 0:
        raise UsageError(f"--space {name}: must be > 0, got {value}")
    if name in non_negative and value < 0:
        raise UsageError(f"--space {name}: must be >= 0, got {value}")
    if name in ("dropout", "plateau_factor", "step_gamma") and value >= 1:
        raise UsageError(f"--space {name}: must be below 1, got {value}")
    for field_name, names in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        if name == field_name and value not in names:
            raise UsageError(f"--space {name}: must be {', '.join(names[:-1])} or {names[-1]}, got {value!r}")


def _scalar(text: str) -> Any:
    text = text.strip()
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None, "null": None}.get(text.lower(), text)


def _value(name: str, text: str) -> Any:
    """One value of a ``--space`` entry: a number, true/false, none or a name; for the fields that
    take names "none" stays a name (``scheduler=none`` is the scheduler called "none", as in a
    TOML file), and a number is still refused as one."""
    value = _scalar(text)
    return text.strip() if name in _STR_FIELDS and value is None else value


def parse_entry(entry: str) -> tuple[str, Param]:
    """``"lr=1e-5:1e-1:log"`` -> ``("lr", FloatRange(1e-5, 0.1, log=True))``.

    Forms: ``low:high`` and ``low:high:log`` (int range when the name is an integer
    hyperparameter), ``a,b,c`` (a choice), ``value`` (fixed).
    """
    name, eq, spec = entry.partition("=")
    name = name.strip()
    if not eq or not name or not spec.strip():
        raise UsageError(f"--space {entry!r}: expected NAME=LOW:HIGH[:log], NAME=A,B,C or NAME=VALUE")
    parts = spec.split(":")
    if len(parts) in (2, 3):
        log = len(parts) == 3
        if log and parts[2].strip() != "log":
            raise UsageError(f"--space {entry!r}: the third part may only be 'log'")
        low, high = _scalar(parts[0]), _scalar(parts[1])
        if not all(isinstance(v, int | float) for v in (low, high)):
            raise UsageError(f"--space {entry!r}: LOW and HIGH must be numbers")
        if name in _INT_FIELDS:
            if not (isinstance(low, int) and isinstance(high, int)):
                raise UsageError(f"--space {entry!r}: {name} takes whole numbers")
            param: Param = IntRange(low, high, log=log)
        else:
            param = FloatRange(float(low), float(high), log=log)
    elif len(parts) == 1 and "," in spec:
        param = Choice(tuple(_value(name, v) for v in spec.split(",")))
    elif len(parts) == 1:
        param = Fixed(_value(name, spec))
    else:
        raise UsageError(f"--space {entry!r}: expected NAME=LOW:HIGH[:log], NAME=A,B,C or NAME=VALUE")
    validate_param(name, param)
    return name, param


def _read(path: Path, option: str, kind: str, parse: Callable[[str], Any], invalid: type[Exception]) -> Any:
    """A file named by ``option``, parsed; missing or unparseable is one line."""
    try:
        return parse(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{option} file {path} does not exist") from None
    except (invalid, UnicodeDecodeError) as e:
        raise UsageError(f"{option} file {path} is not valid {kind}: {e}") from None


def parse_toml(path: Path) -> dict[str, Param]:
    """A TOML file with a ``[space]`` table: ``lr = {low = 1e-5, high = 0.1, log = true}``,
    ``batch_size = [32, 64]`` (a choice) or ``dropout = 0.3`` (fixed)."""
    doc = _read(path, "--space", "TOML", tomllib.loads, tomllib.TOMLDecodeError)
    table = doc.get("space", doc)
    space: dict[str, Param] = {}
    for name, spec in table.items():
        if isinstance(spec, dict):
            unknown = set(spec) - {"low", "high", "log"}
            if unknown or not {"low", "high"} <= set(spec):
                raise UsageError(f"{path}: {name} needs low and high (and optionally log)")
            low, high, log = spec["low"], spec["high"], spec.get("log", False)
            for key, value in (("low", low), ("high", high)):
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise UsageError(f"{path}: {name}.{key} = {value!r} is not a number")
                if name in _INT_FIELDS and (isinstance(value, float) and not value.is_integer()):
                    raise UsageError(f"{path}: {name}.{key} = {value!r} is not a whole number")
            if not isinstance(log, bool):
                raise UsageError(f"{path}: {name}.log = {log!r} must be true or false")
            if name in _INT_FIELDS:
                param: Param = IntRange(int(low), int(high), log=log)
            else:
                param = FloatRange(float(low), float(high), log=log)
        elif isinstance(spec, list):
            param = Choice(tuple(spec))
        else:
            param = Fixed(spec)
        validate_param(name, param)
        space[name] = param
    return space


def parse_overrides(entries: Iterable[str]) -> dict[str, Param]:
    """``--space`` values, in order; an entry ending in ``.toml`` names a file."""
    out: dict[str, Param] = {}
    for entry in entries:
        if entry.endswith(".toml") and "=" not in entry:
            out.update(parse_toml(Path(entry)))
        else:
            name, param = parse_entry(entry)
            out[name] = param
    return out


def parse_params(path: Path) -> dict[str, Param]:
    """Every hyperparameter of a JSON file pinned: the output of ``tuner best --json`` (its
    ``params``), one trial of ``tuner trials --json``, or a plain ``{"lr": 0.01, ...}`` object."""
    doc = _read(path, "--params", "JSON", json.loads, json.JSONDecodeError)
    values = doc.get("params", doc) if isinstance(doc, dict) else None
    if not isinstance(values, dict) or not values:
        raise UsageError(f"--params file {path}: expected an object of hyperparameters, such as the output "
                         "of `tuner best --json`")
    pins: dict[str, Param] = {}
    for name, value in values.items():
        # epochs: the budget the settings were picked for (a study trains its own); settings
        # that have no effect (StepLR's under ReduceLROnPlateau) would only clutter the trial.
        if name == "epochs" or (not applies(name, values) and value is not None):
            continue
        param = Fixed(value)
        validate_param(name, param)
        pins[name] = param
    return pins


def sample(trial: optuna.Trial, space: Mapping[str, Param], only: set[str] | None = None) -> dict[str, Any]:
    """Ask ``trial`` for every searched name in ``space`` (or only those in ``only``)."""
    values: dict[str, Any] = {}
    for name, param in space.items():
        if only is not None and name not in only:
            continue
        if isinstance(param, Fixed):
            values[name] = param.value
        elif isinstance(param, Choice):
            values[name] = trial.suggest_categorical(name, list(param.options))
        elif isinstance(param, IntRange):
            values[name] = trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
        elif param.or_zero and trial.suggest_categorical(f"{name}{ZERO_SWITCH}", [False, True]):
            values[name] = 0.0
        else:
            values[name] = trial.suggest_float(name, param.low, param.high, log=param.log)
    return values


def smaller_batches(param: Param | None, limit: int) -> bool:
    """Whether the space's ``batch_size`` (None: the architecture's own) allows one below ``limit``."""
    if isinstance(param, Choice):
        return min(param.options) < limit
    if isinstance(param, IntRange):
        return param.low < limit
    return isinstance(param, Fixed) and param.value < limit


def applies(name: str, values: Mapping[str, Any]) -> bool:
    """Whether hyperparameter ``name`` has any effect given the others (``plateau_*`` only with
    the plateau scheduler, ``step_*`` only with StepLR, ``dropout`` only when set)."""
    if name.startswith("plateau_"):
        return values.get("scheduler", "plateau") == "plateau"
    if name.startswith("step_"):
        return values.get("scheduler") == "step"
    if name == "momentum":
        return values.get("optimizer", "sgd") == "sgd"
    return values.get(name) is not None


def acting(values: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters that acted, given the others (:func:`applies`): no momentum for Adam,
    no ``step_*`` under ReduceLROnPlateau. ``epochs`` (a budget, not a setting) is left out: what
    a trial trained is its history's length."""
    return {k: v for k, v in values.items() if k != "epochs" and applies(k, values)}


def fixed_params_for(reference: Hyperparameters, space: Mapping[str, Param]) -> dict[str, Any]:
    """Optuna params that make a trial sample exactly ``reference`` where the space allows.

    Reference values outside the space (seed 000's batch of 1000, say) are left out: the
    reference trial uses them anyway, it just does not teach the sampler about them.
    """
    values = reference.as_dict()
    params: dict[str, Any] = {}
    for name, param in space.items():
        if (name not in values or not applies(name, values) or isinstance(param, Fixed)
                or not param.contains(values[name])):
            continue
        if isinstance(param, FloatRange) and param.or_zero:
            params[f"{name}{ZERO_SWITCH}"] = values[name] == 0
            if values[name] == 0:
                continue
        params[name] = values[name]
    return params


def sample_reference(trial: optuna.Trial, space: Mapping[str, Param],
                     reference: Hyperparameters) -> dict[str, Any]:
    """For a trial enqueued with :func:`fixed_params_for`: ask only what was enqueued, so the
    sampler's history holds the reference wherever the space can express it."""
    enqueued = {name.removesuffix(ZERO_SWITCH) for name in fixed_params_for(reference, space)}
    return sample(trial, space, only=enqueued)


def hyperparameters(values: Mapping[str, Any], base: Hyperparameters | None = None) -> Hyperparameters:
    """Complete ``values`` into :class:`Hyperparameters` (defaults from ``base`` or the core)."""
    merged: dict[str, Any] = dict(_NOT_SEARCHED)
    if base is not None:
        merged.update(base.as_dict())
    merged.update(values)
    return Hyperparameters.from_dict(merged)


def describe(space: Mapping[str, Param]) -> dict[str, str]:
    """``{"lr": "1e-05..0.1 log", ...}``: recorded in the study, shown by the CLI."""
    return {name: param.describe() for name, param in space.items()}
