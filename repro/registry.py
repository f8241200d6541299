"""The experiments registry: every reproduction experiment is declared in code here.

A note's claim names experiments only by id (``experiment:: flash-attention/exact``); the
registry maps ids to functions that live in this package (or in a third-party package
that registers through the ``paperkb.experiments`` entry-point group). Nothing a note
says can make paperkb import or run any other code.

Declaring an experiment, beside the code it exercises::

    from repro.registry import Param, Preset, experiment

    @experiment(
        "transformer/param-count",
        "Transformer base/big parameter counts against the paper's 65M and 213M",
        params=[Param("vocab_size", int, 37000, "shared source/target BPE vocabulary")],
        presets={"smoke": Preset(), "full": Preset()},
    )
    def param_count(ctx):
        import torch  # heavy imports inside the function: listing must stay fast
        n = ...
        ctx.log_metric("params_base", n)
        ctx.check("params_base_millions", n / 1e6, "between", (60.0, 70.0))
        return ctx.result()

Declaration modules (``repro/<area>/experiments.py``) must not import torch at module
level: ``paperkb experiments`` and ``paperkb check`` import them to list ids.

The experiment function receives a :class:`RunContext`; it records metrics with
``ctx.log_metric``, states each threshold it is judged against with ``ctx.check`` and
returns ``ctx.result()``. The verdict is "supported" when every check of our code (evidence
``direct`` or ``proxy``) passed and "contradicted" otherwise; ``reference`` checks (a figure
of torch or transformers alone) are recorded but never count. An experiment that states no
check of our code cannot support a claim (its run ends in error).

Every experiment declares at least one negative control (``controls=[Control(...)]``): a
sabotaged variant of the implementation it judges, selected by ``ctx.control``. Run with
it, the experiment must end "contradicted"; the registry refuses an experiment without one
(the refusal is listed by ``paperkb check``). See docs/verdicts.md.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "paperkb.experiments"

# Modules of this package that declare experiments. Imported lazily by ``load_all``.
BUILTIN_MODULES = (
    "repro.transformer.experiments",
    "repro.transformer.ablations",
    "repro.llama.experiments",
    "repro.attention.experiments",
    "repro.finetune.experiments",
    "repro.evaluation.experiments",
    "repro.transformer.translation",
    "repro.attention.decoding",
    "repro.paper_settings",  # paper presets of the modules above (after them)
)

PRESET_NAMES = ("smoke", "full")  # every experiment has these; "paper" is optional

# The scale a run was made at: ``smoke`` (reduced, about a minute on a CPU), ``full`` (the
# largest setting this machine can run), ``paper`` (the paper's own setting and hardware).
# Only a ``paper``-scale run of direct evidence can make a claim "reproduced".
SCALES = ("smoke", "full", "paper")

# What a check is evidence of: ``direct`` (it measures what the claim states, on our code),
# ``proxy`` (it measures our code on a stand-in for the claim's setting), ``reference`` (a
# figure of a third-party library alone, e.g. torch's own kernel: recorded, never evidence).
EVIDENCE_KINDS = ("direct", "proxy", "reference")


class RegistryError(Exception):
    """A bad experiment declaration, an unknown id or a bad parameter value."""


# --------------------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """A typed parameter with a default. ``type`` is one of int, float, str, bool, list."""

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple | None = None
    # A threshold the experiment is judged against (a tolerance, a target): a preset (code)
    # may set it, a claim's params:: may not; a claim states its own expect:: instead.
    threshold: bool = False
    # (low, high) for a numeric size knob, either end None: a value outside is refused
    # (for a list parameter, every number in it). Keeps a note from asking for a 10^12-token run.
    bounds: tuple[float | None, float | None] | None = None

    def parse(self, text: str) -> Any:
        """Convert a command-line string (``--param name=text``) to this parameter's type."""
        try:
            if self.type is bool:
                low = text.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    value: Any = True
                elif low in ("0", "false", "no", "off"):
                    value = False
                else:
                    raise ValueError(text)
            elif self.type is list:
                value = [_auto(x) for x in text.split(",") if x.strip()]
            elif self.type is float:
                value = float(text)
                if not math.isfinite(value):
                    raise ValueError(text)
            else:
                value = self.type(text)
        except (TypeError, ValueError):
            raise RegistryError(f"parameter {self.name!r} expects {self.type.__name__}, got {text!r}") from None
        self.validate(value)
        return value

    def coerce(self, value: Any) -> Any:
        """A value written in a note's ``params::`` (already a number, list or text) as this
        parameter's type; refused like a bad ``--param`` when it does not fit."""
        if self.type is bool and isinstance(value, bool):
            ok = True
        elif self.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value, ok = float(value), math.isfinite(float(value))
        elif self.type is int and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        elif self.type is list and isinstance(value, list):
            ok = True
        elif self.type is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value, ok = str(value), True
        else:
            ok = False
        if not ok:
            text = (
                ",".join(map(str, value))
                if isinstance(value, list)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            return self.parse(text)
        self.validate(value)
        return value

    def validate(self, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            raise RegistryError(
                f"parameter {self.name!r} must be one of {', '.join(map(str, self.choices))}; got {value!r}"
            )
        if self.bounds is not None:
            low, high = self.bounds
            items = value if isinstance(value, list) else [value]
            for v in items:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                if (low is not None and v < low) or (high is not None and v > high):
                    raise RegistryError(
                        f"parameter {self.name!r} must lie in [{_bound(low)}, {_bound(high)}]; got {v!r}"
                    )


def _bound(x: float | None) -> str:
    return "-inf" if x is None else f"{x:g}"


def _auto(text: str) -> Any:
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class Metric:
    """A metric an experiment records (``ctx.log_metric``), declared so that ``paperkb check``
    can refuse a claim's ``expect::`` on a metric that does not exist. ``name`` may hold
    ``{placeholders}`` for a family (``params_{size}`` covers ``params_7B``, ``params_70B``)."""

    name: str
    unit: str = ""
    meaning: str = ""

    def matches(self, name: str) -> bool:
        if "{" not in self.name:
            return name == self.name
        return _metric_pattern(self.name).fullmatch(name) is not None


def _metric_pattern(declared: str) -> Any:
    import re

    parts = re.split(r"\{[^{}]*\}", declared)
    return re.compile(r"[A-Za-z0-9_.+\-]+?".join(re.escape(p) for p in parts))


DEFAULT_SEEDS = (0, 1, 2)  # a stochastic experiment's seeds at a preset that names none
MIN_SEEDS = 3


@dataclass(frozen=True)
class SeedRule:
    """How the runs of a stochastic experiment's declared seeds decide a claim: supported
    when at least ``ceil(min_fraction * n)`` of the ``n`` seeds passed (1.0: every one),
    contradicted otherwise; a seed whose run ended in error makes the whole set error. ``why``
    says where the rule comes from (e.g. a binomial bound: if the code is right each seed
    passes with probability >= 0.9, so 4 or more of 5 pass with probability >= 0.92)."""

    min_fraction: float = 1.0
    why: str = ""

    def needed(self, n_seeds: int) -> int:
        return max(1, min(n_seeds, math.ceil(self.min_fraction * n_seeds - 1e-9)))

    def text(self, n_seeds: int) -> str:
        need = self.needed(n_seeds)
        if need >= n_seeds:
            return f"every one of {n_seeds} seeds passes"
        return f"at least {need} of {n_seeds} seeds pass"


@dataclass(frozen=True)
class Requirements:
    """What a preset needs from the machine."""

    device: str = "cpu"  # "cpu": runs anywhere; "cuda": needs a CUDA GPU
    min_gpu_memory_gb: float = 0.0
    nproc: int = 1  # number of processes (torchrun) the preset is written for
    triton: bool = False  # needs the optional triton package
    inputs: tuple[str, ...] = ()  # named inputs (checkpoints, data sets: see repro.inputs)


@dataclass(frozen=True)
class Preset:
    """Parameter overrides plus requirements. ``smoke``: CPU, about a minute, reduced
    scale. ``full``: the largest setting this machine can run. ``paper`` (optional): the
    paper's own setting. ``scale`` defaults to the preset's name when that is a scale."""

    params: dict[str, Any] = field(default_factory=dict)
    requires: Requirements = field(default_factory=Requirements)
    description: str = ""
    timeout_s: float | None = None  # a sensible default timeout for this preset
    scale: str = ""  # one of SCALES; "" = the preset's own name


@dataclass(frozen=True)
class Control:
    """A negative control: a deliberately broken variant of the implementation an experiment
    judges (e.g. tiled attention without the running-max rescale). Run with it
    (``ctx.control == name``), the experiment must end "contradicted"; if it passes, the
    check cannot fail and that is an error of the experiment. It runs with the parameters of
    the claim it is run for, so it shows that the claim's own configuration can fail."""

    name: str
    description: str
    triton: bool = False  # it sabotages the Triton kernel: without the triton package it is skipped, not an error


@dataclass
class Experiment:
    id: str
    description: str
    fn: Callable[[RunContext], Result]
    params: tuple[Param, ...] = ()
    presets: dict[str, Preset] = field(default_factory=dict)
    module: str = ""
    controls: tuple[Control, ...] = ()
    metrics: tuple[Metric, ...] = ()  # what it records (ctx.log_metric), for claims' expect::
    stochastic: bool = False  # its verdict depends on the seed: decided over seeds_for(preset)
    seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # preset -> its deciding seeds
    seed_rule: SeedRule = field(default_factory=SeedRule)
    scope: str = ""  # what it models (and leaves out), named in a claim's verdict line

    def seeds_for(self, preset: str) -> tuple[int, ...]:
        """The seeds whose runs decide a claim at ``preset``: the declared ones, else
        DEFAULT_SEEDS for a stochastic experiment and (0,) for a deterministic one."""
        if self.seeds.get(preset):
            return tuple(int(s) for s in self.seeds[preset])
        return DEFAULT_SEEDS if self.stochastic else (0,)

    def rule_text(self, preset: str) -> str:
        """The stated rule its seeds decide by, e.g. "every one of 3 seeds passes"."""
        return self.seed_rule.text(len(self.seeds_for(preset)))

    def declares_metric(self, name: str) -> bool:
        return any(m.matches(name) for m in self.metrics)

    def claim_errors(self, params: dict[str, Any], expect: list[dict[str, Any]]) -> list[str]:
        """Why a claim's ``params::`` / ``expect::`` do not fit this experiment (empty: they do):
        an unknown or threshold parameter, a value of the wrong type or out of bounds, a metric
        it does not record. Each names what is known."""
        errors = []
        names = [p.name for p in self.params]
        for name, value in params.items():
            if name not in names:
                errors.append(f"{self.id} has no parameter {name!r} (known: {', '.join(names) or 'none'})")
                continue
            p = self.param(name)
            if p.threshold:
                errors.append(
                    f"params:: cannot set {name!r}: it is a threshold of {self.id} (state the claim's own expect:: instead)"
                )
                continue
            try:
                p.parse(value) if isinstance(value, str) and p.type is not str else p.coerce(value)
            except RegistryError as exc:
                errors.append(f"{self.id}: {exc}")
        for e in expect:
            metric = str(e.get("metric"))
            if not self.declares_metric(metric):
                known = ", ".join(m.name for m in self.metrics) or "none"
                errors.append(f"{self.id} records no metric {metric!r} (known: {known})")
        return errors

    def scale_of(self, preset: str) -> str:
        """The scale (one of SCALES) a run at ``preset`` is made at."""
        p = self.presets.get(preset)
        return p.scale if p is not None and p.scale else preset

    def control(self, name: str) -> Control:
        for c in self.controls:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.controls) or "none"
        raise RegistryError(f"experiment {self.id!r} has no control {name!r} (known: {known})")

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise RegistryError(f"experiment {self.id!r} has no parameter {name!r} (known: {known})")

    def resolve_params(self, preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults, then the preset's values, then ``overrides`` (typed values, strings from
        ``--param`` or values read from a note's ``params::``)."""
        if preset not in self.presets:
            raise RegistryError(f"experiment {self.id!r} has no preset {preset!r} (has: {', '.join(self.presets)})")
        values = {p.name: p.default for p in self.params}
        values.update(self.presets[preset].params)
        for name, value in (overrides or {}).items():
            p = self.param(name)
            if isinstance(value, str) and p.type is not str:
                value = p.parse(value)
            else:
                value = p.coerce(value)
            values[name] = value
        return values


_REGISTRY: dict[str, Experiment] = {}
_LOADED = False
_LOAD_ERRORS: list[str] = []
_REFUSED: dict[str, str] = {}  # experiment id -> why the registry refused it


def experiment(
    id: str,
    description: str,
    *,
    params: list[Param] | tuple[Param, ...] = (),
    presets: dict[str, Preset] | None = None,
    controls: list[Control] | tuple[Control, ...] = (),
    metrics: list[Metric] | tuple[Metric, ...] = (),
    stochastic: bool = False,
    seeds: dict[str, tuple[int, ...]] | None = None,
    seed_rule: SeedRule | None = None,
    scope: str = "",
) -> Callable[[Callable], Callable]:
    """Decorator that registers ``fn`` as experiment ``id``.

    ``metrics``: what it records (``Metric(name, unit, meaning)``); a claim's ``expect::`` may
    name only these. ``stochastic``: its verdict depends on the seed, so a claim is decided over
    the preset's ``seeds`` (``{"smoke": (0, 1, 2), "full": (0, 1, 2, 3, 4)}``; at least three,
    DEFAULT_SEEDS where a preset names none) by ``seed_rule`` (default: every seed passes).
    ``scope``: what it models (and leaves out), shown in a claim's verdict line."""

    def decorate(fn: Callable) -> Callable:
        exp = Experiment(
            id=id,
            description=description,
            fn=fn,
            params=tuple(params),
            presets=dict(presets or {"smoke": Preset(), "full": Preset()}),
            module=fn.__module__,
            controls=tuple(controls),
            metrics=tuple(metrics),
            stochastic=stochastic,
            seeds={k: tuple(v) for k, v in (seeds or {}).items()},
            seed_rule=seed_rule or SeedRule(),
            scope=scope,
        )
        if not exp.controls:
            # Refused, but as a load error (listed by `paperkb check`): the module's other
            # experiments still load.
            _refuse(exp.module, f"experiment {id!r} {NO_CONTROL}")
            _REFUSED[id] = f"experiment {id!r} {NO_CONTROL}"
            return fn
        register(exp)
        return fn

    return decorate


NO_CONTROL = (
    "declares no negative control (controls=[Control(...)]); refused: a check that was never "
    "shown to fail on a sabotaged implementation cannot support a claim"
)


def _refuse(module: str, message: str) -> None:
    line = f"{module}: {message}"
    if line not in _LOAD_ERRORS:
        _LOAD_ERRORS.append(line)


def register(exp: Experiment) -> Experiment:
    if not exp.id or exp.id != exp.id.strip() or " " in exp.id:
        raise RegistryError(f"bad experiment id {exp.id!r}")
    if not exp.controls:
        raise RegistryError(f"experiment {exp.id!r} {NO_CONTROL}")
    for c in exp.controls:
        if not isinstance(c, Control) or not c.name or " " in c.name:
            raise RegistryError(f"experiment {exp.id!r}: bad control {c!r}")
    for name in PRESET_NAMES:
        if name not in exp.presets:
            raise RegistryError(f"experiment {exp.id!r} lacks the {name!r} preset")
    names = {p.name for p in exp.params}
    for pname, preset in exp.presets.items():
        unknown = set(preset.params) - names
        if unknown:
            raise RegistryError(f"preset {pname!r} of {exp.id!r} sets unknown parameters {sorted(unknown)}")
    for pname, preset in exp.presets.items():
        for name, value in preset.params.items():
            try:
                exp.param(name).validate(value)
            except RegistryError as exc:
                raise RegistryError(f"preset {pname!r} of {exp.id!r}: {exc}") from None
    for pname, preset in exp.presets.items():
        scale = preset.scale or pname
        if scale not in SCALES:
            raise RegistryError(
                f"preset {pname!r} of {exp.id!r} has unknown scale {scale!r} (one of {', '.join(SCALES)})"
            )
    control_names = [c.name for c in exp.controls]
    if len(set(control_names)) != len(control_names):
        raise RegistryError(f"experiment {exp.id!r} declares a control twice")
    metric_names = [m.name for m in exp.metrics]
    if len(set(metric_names)) != len(metric_names) or not all(isinstance(m, Metric) for m in exp.metrics):
        raise RegistryError(f"experiment {exp.id!r}: metrics must be distinct Metric(name, unit, meaning)")
    unknown_seeds = set(exp.seeds) - set(exp.presets)
    if unknown_seeds:
        raise RegistryError(f"experiment {exp.id!r} declares seeds for unknown presets {sorted(unknown_seeds)}")
    for pname in exp.presets:
        seeds = exp.seeds_for(pname)
        if len(set(seeds)) != len(seeds):
            raise RegistryError(f"preset {pname!r} of {exp.id!r} names a seed twice")
        if exp.stochastic and len(seeds) < MIN_SEEDS:
            raise RegistryError(
                f"preset {pname!r} of stochastic {exp.id!r} has {len(seeds)} seeds; at least {MIN_SEEDS} decide a claim"
            )
        if not exp.stochastic and len(seeds) != 1:
            raise RegistryError(f"preset {pname!r} of {exp.id!r} names several seeds but it is not stochastic=True")
    if not 0.0 < exp.seed_rule.min_fraction <= 1.0:
        raise RegistryError(f"experiment {exp.id!r}: SeedRule.min_fraction must be in (0, 1]")
    old = _REGISTRY.get(exp.id)
    if old is not None and (old.module, old.fn.__qualname__) != (exp.module, exp.fn.__qualname__):
        raise RegistryError(f"experiment id {exp.id!r} declared twice ({old.module} and {exp.module})")
    _REGISTRY[exp.id] = exp
    return exp


def load_all() -> dict[str, Experiment]:
    """Import the built-in declaration modules and the entry points, once."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for mod in BUILTIN_MODULES:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as exc:
                if exc.name is not None and mod.startswith(exc.name):
                    continue  # that area is not written yet
                _LOAD_ERRORS.append(f"{mod}: {exc}")
            except Exception as exc:  # a broken module must not hide the others
                _LOAD_ERRORS.append(f"{mod}: {type(exc).__name__}: {exc}")
        try:
            from importlib.metadata import entry_points

            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    obj = ep.load()
                    if callable(obj) and not isinstance(obj, type):
                        for exp in obj() or ():
                            try:
                                register(exp)
                            except RegistryError as exc:  # refuse that one, keep the others
                                _refuse(f"entry point {ep.name}", str(exc))
                except Exception as exc:
                    _LOAD_ERRORS.append(f"entry point {ep.name}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # pragma: no cover - broken metadata
            _LOAD_ERRORS.append(f"entry points: {exc}")
    return dict(_REGISTRY)


def load_errors() -> list[str]:
    load_all()
    return list(_LOAD_ERRORS)


def get(id: str) -> Experiment:
    exps = load_all()
    try:
        return exps[id]
    except KeyError:
        if id in _REFUSED:
            raise RegistryError(_REFUSED[id]) from None
        close = [e for e in exps if id.split("/")[-1] in e or e.startswith(id)]
        hint = f" (did you mean {', '.join(sorted(close)[:3])}?)" if close else ""
        raise RegistryError(f"unknown experiment {id!r}{hint}") from None


def describe(exp: Experiment) -> dict[str, Any]:
    """An experiment as plain data (``paperkb experiments --format json``): parameters,
    presets with their scale and requirements, and its negative controls."""
    presets = {}
    for name, p in exp.presets.items():
        r = p.requires
        presets[name] = {
            "params": p.params,
            "description": p.description,
            "timeout_s": p.timeout_s,
            "scale": exp.scale_of(name),
            "seeds": list(exp.seeds_for(name)),
            "requires": {
                "device": r.device,
                "min_gpu_memory_gb": r.min_gpu_memory_gb,
                "nproc": r.nproc,
                "triton": r.triton,
                "inputs": list(r.inputs),
            },
        }
    return {
        "id": exp.id,
        "description": exp.description,
        "module": exp.module,
        "params": [
            {
                "name": p.name,
                "type": p.type.__name__,
                "default": p.default,
                "help": p.help,
                "choices": list(p.choices) if p.choices else None,
                "threshold": p.threshold,
                "bounds": list(p.bounds) if p.bounds else None,
            }
            for p in exp.params
        ],
        "metrics": [{"name": m.name, "unit": m.unit, "meaning": m.meaning} for m in exp.metrics],
        "stochastic": exp.stochastic,
        "seed_rule": {
            "min_fraction": exp.seed_rule.min_fraction,
            "why": exp.seed_rule.why,
            "text": {name: exp.rule_text(name) for name in exp.presets},
        },
        "scope": exp.scope,
        "presets": presets,
        "controls": [{"name": c.name, "description": c.description} for c in exp.controls],
    }


def preset_summary(described: dict[str, Any]) -> str:
    """``smoke (cpu), full (cuda, ≥40 GB)``: a :func:`describe` entry's presets in one line."""
    out = []
    for name, p in described["presets"].items():
        req = p["requires"]
        bits = [req["device"]]
        if req["min_gpu_memory_gb"]:
            bits.append(f"≥{req['min_gpu_memory_gb']:g} GB")
        if req["nproc"] > 1:
            bits.append(f"{req['nproc']} procs")
        if req["triton"]:
            bits.append("triton")
        bits.extend(req.get("inputs") or ())
        out.append(f"{name} ({', '.join(bits)})")
    return ", ".join(out)


def refusal(id: str) -> str | None:
    """Why the registry refused experiment ``id`` (it declares no control), or None."""
    load_all()
    why = _REFUSED.get(id)
    return "it declares no negative control" if why else None


def ids() -> list[str]:
    return sorted(load_all())


# --------------------------------------------------------------------------------------
# Running: what an experiment function sees and returns
# --------------------------------------------------------------------------------------
_OPS: dict[str, Callable[[float, Any], bool]] = {
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "==": lambda v, t: v == t,
    "between": lambda v, t: t[0] <= v <= t[1],
}


@dataclass
class Check:
    """One threshold an experiment states and is judged against."""

    name: str
    value: float
    op: str
    threshold: Any
    description: str = ""
    evidence: str = "direct"  # one of EVIDENCE_KINDS
    scale: str = "smoke"  # one of SCALES: the scale of the run that made it
    # False: recorded but not judged, e.g. the experiment's own thresholds in a run made for a
    # claim's params::, which is judged on its expect:: alone (see apply_expectations).
    counts: bool = True

    @property
    def passed(self) -> bool:
        try:
            v = float(self.value)
        except (TypeError, ValueError):
            return False
        if math.isnan(v):
            return False
        return bool(_OPS[self.op](v, self.threshold))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "op": self.op,
            "threshold": list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold,
            "description": self.description,
            "passed": self.passed,
            "evidence": self.evidence,
            "scale": self.scale,
            "counts": self.counts,
        }


@dataclass
class MetricPoint:
    """One value an experiment logged (``ctx.log_metric``) at a step and time."""

    name: str
    value: float
    step: float | None = None
    time: float = 0.0


@dataclass
class Result:
    verdict: str  # "supported" | "contradicted"
    checks: list[Check]
    metrics: list[MetricPoint]
    summary: str = ""
    undeclared_metrics: list[str] = field(default_factory=list)  # logged but not in metrics=[...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "checks": [c.to_dict() for c in self.checks],
            "metrics": [m.__dict__ for m in self.metrics],
            "summary": self.summary,
            "undeclared_metrics": list(self.undeclared_metrics),
        }


class RunContext:
    """Handed to an experiment function. The runner subclasses or wraps it to stream
    metrics to the tracker; used bare (e.g. in unit tests) it just collects them."""

    def __init__(
        self,
        params: dict[str, Any],
        *,
        preset: str = "smoke",
        device: str = "cpu",
        seed: int = 0,
        run_dir: Path | str | None = None,
        rank: int = 0,
        world_size: int = 1,
        control: str | None = None,
        scale: str | None = None,
        inputs: dict[str, str] | None = None,
        declared_metrics: tuple[Metric, ...] | None = None,
    ) -> None:
        self.params = dict(params)
        # Named inputs of the preset (``repro.inputs``): name -> a validated local path.
        self.inputs = dict(inputs or {})
        # What the experiment declares it records (None: not known, e.g. a bare context in a
        # test); a name logged outside it is listed in the result, so declarations stay true.
        self.declared_metrics = declared_metrics
        self.undeclared_metrics: list[str] = []
        self.preset = preset
        # The negative control being run (a Control's name), or None for the real code.
        self.control = control
        self.scale = scale or (preset if preset in SCALES else "smoke")
        self.device = device
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.rank = rank
        self.world_size = world_size
        self.metrics: list[MetricPoint] = []
        self.checks: list[Check] = []
        self.artifacts: list[str] = []
        self._t0 = time.time()

    # metrics ---------------------------------------------------------------------
    def log_metric(self, name: str, value: float, step: float | None = None) -> None:
        m = MetricPoint(name, float(value), None if step is None else float(step), time.time() - self._t0)
        self.metrics.append(m)
        if (
            self.declared_metrics is not None
            and name not in self.undeclared_metrics
            and not any(d.matches(name) for d in self.declared_metrics)
        ):
            self.undeclared_metrics.append(name)
        self._on_metric(m)

    def _on_metric(self, m: MetricPoint) -> None:  # the runner overrides this
        pass

    def progress(self, done: float, total: float, message: str = "") -> None:
        """Report progress (e.g. steps done of total) for the live display."""
        self._on_progress(done, total, message)

    def _on_progress(self, done: float, total: float, message: str) -> None:
        pass

    def log(self, message: str) -> None:
        print(message, flush=True)

    # artifacts -------------------------------------------------------------------
    def artifact_path(self, name: str) -> Path:
        """A path inside the run's folder for a file the experiment writes (plot, table)."""
        if self.run_dir is None:
            # Without a run folder (run_inline in tests and notebooks) the files go to a
            # temporary folder, never into the working tree.
            import tempfile

            self.run_dir = Path(tempfile.mkdtemp(prefix="paperkb-scratch-"))
        base = self.run_dir
        base.mkdir(parents=True, exist_ok=True)
        path = base / name
        self.artifacts.append(name)
        return path

    # verdict ---------------------------------------------------------------------
    def check(
        self, name: str, value: float, op: str, threshold: Any, description: str = "", *, evidence: str = "direct"
    ) -> bool:
        """State a threshold and record whether ``value`` meets it. Returns ``passed``.

        ``evidence``: ``direct`` (our code, measuring what the claim states), ``proxy`` (our
        code on a stand-in setting) or ``reference`` (a third-party figure: recorded, never
        evidence for a claim)."""
        if op not in _OPS:
            raise RegistryError(f"unknown comparison {op!r} in check {name!r}")
        if evidence not in EVIDENCE_KINDS:
            raise RegistryError(f"unknown evidence kind {evidence!r} in check {name!r}")
        if op == "between":
            threshold = (float(threshold[0]), float(threshold[1]))
        c = Check(name, float(value), op, threshold, description, evidence, self.scale)
        self.checks.append(c)
        return c.passed

    def result(self, summary: str = "") -> Result:
        result = judge(list(self.checks), list(self.metrics), summary)
        result.undeclared_metrics = list(self.undeclared_metrics)
        return result


def judge(checks: list[Check], metrics: list[MetricPoint], summary: str = "") -> Result:
    """The verdict of a run from its checks: reference checks never count, nor checks
    marked ``counts=False``."""
    evidence = [c for c in checks if c.evidence != "reference" and c.counts]
    if not evidence:
        what = "only reference checks (figures of a third-party library alone)" if checks else "no check"
        raise RegistryError(f"the experiment stated {what}, so it cannot support or contradict a claim")
    verdict = "supported" if all(c.passed for c in evidence) else "contradicted"
    return Result(verdict, checks, metrics, summary)


def last_metric(metrics: list[MetricPoint], name: str) -> float | None:
    value = None
    for m in metrics:
        if m.name == name:
            value = m.value
    return value


def apply_expectations(result: Result, expectations: list[dict[str, Any]], scale: str, *, only: bool = False) -> Result:
    """Add a claim's ``expect::`` thresholds (see ``kb.claimspec``) as direct checks on the
    metrics the run recorded, and judge again. A metric the run does not record is an error.

    ``only``: the claim sets its own ``params::``, so it is judged on its expectations alone;
    the experiment's own checks (thresholds about the paper's configuration) are kept in the
    record with ``counts=False``."""
    from dataclasses import replace

    from kb.claimspec import expectation_threshold

    checks = [replace(c, counts=False) for c in result.checks] if only else list(result.checks)
    for e in expectations:
        value = last_metric(result.metrics, e["metric"])
        if value is None:
            known = ", ".join(sorted({m.name for m in result.metrics})) or "none"
            raise RegistryError(
                f"the claim expects metric {e['metric']!r}, which this run did not record (it records: {known})"
            )
        op, threshold = expectation_threshold(e)
        checks.append(
            Check(
                f"expect {e['metric']}",
                float(value),
                op,
                threshold,
                f"the claim's own expectation: {e.get('text') or e['metric']}",
                "direct",
                scale,
            )
        )
    judged = judge(checks, result.metrics, result.summary)
    judged.undeclared_metrics = list(result.undeclared_metrics)
    return judged


def run_inline(
    exp_id: str,
    preset: str = "smoke",
    *,
    seed: int = 0,
    device: str = "cpu",
    run_dir: Path | str | None = None,
    control: str | None = None,
    expect: list[dict[str, Any]] | None = None,
    inputs: dict[str, str] | None = None,
    **overrides: Any,
) -> Result:
    """Run an experiment in this process (for tests and notebooks; the CLI uses a child
    process through ``repro.runner``). ``control`` runs one of its negative controls;
    ``expect`` adds a claim's expectations (``kb.claimspec.parse_expect``) as checks."""
    exp = get(exp_id)
    if control is not None:
        exp.control(control)  # refuse an unknown name before running anything
    params = exp.resolve_params(preset, overrides)
    scale = exp.scale_of(preset)
    ctx = RunContext(
        params,
        preset=preset,
        device=device,
        seed=seed,
        run_dir=run_dir,
        control=control,
        scale=scale,
        inputs=inputs,
        declared_metrics=exp.metrics,
    )
    result = exp.fn(ctx)
    if expect:
        result = apply_expectations(result, expect, scale, only=bool(overrides))
    return result
