r"""The method registry: one name, one configuration dataclass and one function per method.

A method is registered once, in its own module, with :func:`register`::

    @register("dps", DPSConfig)
    def dps(problem: InverseProblem, config: DPSConfig, options: MethodOptions) -> Reconstruction: ...

``config`` holds the publication's parameters in the publication's units with its published
defaults (a per-task table is a ``for_problem(problem)`` classmethod of the dataclass); the method
converts them to the sampler's units itself (:mod:`pdeinv.sampling.methods.units`). ``options``
carries the run settings shared by every method (prior, seed, samples, steps override).

A *modifier* is a suffix that adds a term to a diffusion method's loss (``+equireg``, ``+repa``),
registered with :func:`register_modifier` as ``build(problem, options, base) -> config`` (``base`` the
method's name without suffixes, for a term whose published setting depends on the solver); its
configuration travels in the base method's
``config.modifiers`` so that :func:`method_config` records it. Suffixes compose
(``fundps+repa+equireg``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass

from pdeinv.errors import UsageError
from pdeinv.plugins import load_plugins
from pdeinv.sampling.problem import InverseProblem, MethodOptions, Reconstruction

KINDS = ("guided", "baseline", "particle")


@dataclass(frozen=True)
class NoParameters:
    """Configuration of a method without parameters of its own (the classical baselines)."""


@dataclass(frozen=True)
class Method:
    """A registered method.

    Attributes
    ----------
    name : str
        Registered name.
    run : callable
        ``run(problem, config, options) -> Reconstruction``.
    config : type
        Its configuration dataclass.
    kind : {"guided", "baseline", "particle"}
        A diffusion method that accepts modifiers, a classical baseline, or a particle method.
    needs_prior : bool
        Whether ``options.prior`` must be a diffusion prior.
    """

    name: str
    run: Callable
    config: type
    kind: str
    needs_prior: bool

    def default_config(self, problem: InverseProblem | None = None):
        """The publication's configuration, for ``problem`` when the defaults depend on the task."""
        for_problem = getattr(self.config, "for_problem", None)
        if for_problem is not None and problem is not None:
            return for_problem(problem)
        return self.config()


@dataclass(frozen=True)
class Modifier:
    """A registered suffix: ``build(problem, options, base) -> config`` of the term it adds to method ``base``."""

    suffix: str
    config: type
    build: Callable


METHODS: dict[str, Method] = {}
MODIFIERS: dict[str, Modifier] = {}


def register(name: str, config: type = NoParameters, *, kind: str = "guided", needs_prior: bool | None = None):
    """Decorator registering ``run(problem, config, options) -> Reconstruction`` as method ``name``.

    Raises
    ------
    ValueError
        For a taken name, an unknown kind or a configuration that is not a dataclass.
    """
    if "+" in name:
        raise ValueError(f"method names cannot contain '+' (it starts a modifier suffix), got {name!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not (isinstance(config, type) and is_dataclass(config)):
        raise ValueError(f"the configuration of method {name!r} must be a dataclass type, got {config!r}")
    if kind == "guided" and "modifiers" not in {f.name for f in fields(config)}:
        raise ValueError(f"the configuration of guided method {name!r} needs a 'modifiers' field (GuidedConfig)")

    def decorator(run: Callable) -> Callable:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered (by {METHODS[name].run.__module__})")
        prior = kind != "baseline" if needs_prior is None else needs_prior
        METHODS[name] = Method(name, run, config, kind, prior)
        return run

    return decorator


def register_modifier(suffix: str, config: type):
    """Decorator registering ``build(problem, options, base) -> config`` for the suffix ``suffix`` (``"+name"``)."""
    if not suffix.startswith("+") or "+" in suffix[1:]:
        raise ValueError(f"a modifier suffix is '+name', got {suffix!r}")

    def decorator(build: Callable) -> Callable:
        if suffix in MODIFIERS:
            raise ValueError(f"modifier {suffix!r} is already registered")
        MODIFIERS[suffix] = Modifier(suffix, config, build)
        return build

    return decorator


def method_names() -> list[str]:
    """Every registered method, and each guided method with each single modifier."""
    load_plugins()
    names = sorted(METHODS)
    guided = [n for n in names if METHODS[n].kind == "guided"]
    return names + sorted(f"{n}{s}" for n in guided for s in MODIFIERS)


def split_method(name: str) -> tuple[Method, tuple[str, ...]]:
    """``"fundps+repa+equireg"`` -> (the ``fundps`` entry, ``("+repa", "+equireg")``), checking every part."""
    base, *rest = name.split("+")
    suffixes = tuple(f"+{part}" for part in rest)
    if base not in METHODS or any(s not in MODIFIERS for s in suffixes):
        load_plugins()
    if base not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(method_names())}")
    method = METHODS[base]
    for suffix in suffixes:
        if suffix not in MODIFIERS:
            raise ValueError(f"unknown suffix {suffix!r} in {name!r}; choose from {', '.join(sorted(MODIFIERS))}")
        if method.kind != "guided":
            guided = sorted(n for n, m in METHODS.items() if m.kind == "guided")
            raise ValueError(f"{suffix} applies to diffusion methods ({', '.join(guided)}), not {base!r}")
    if len(set(suffixes)) != len(suffixes):
        raise ValueError(f"a suffix appears twice in {name!r}")
    return method, suffixes


PAPER = "paper"


def configure(name: str, problem: InverseProblem | None = None, options: MethodOptions | None = None):
    """The configuration method ``name`` runs with on ``problem``.

    The publication's (:meth:`Method.default_config`), then ``options.method_preset`` (a named set of
    fields of the config class's ``presets``), ``options.steps``, ``options.method_options``
    (:func:`with_options`) and the suffixes' terms.
    """
    method, suffixes = split_method(name)
    config = method.default_config(problem)
    names = {f.name for f in fields(config)}
    if options is not None:
        config = with_preset(method, config, options.method_preset)
    if options is not None and options.steps is not None and "steps" in names:
        config = dataclasses.replace(config, steps=options.steps)
    if options is not None and options.method_options:
        config = with_options(method, config, options.method_options)
    if suffixes:
        options = MethodOptions() if options is None else options
        added = tuple(MODIFIERS[s].build(problem, options, method.name) for s in suffixes)
        config = dataclasses.replace(config, modifiers=tuple(config.modifiers) + added)
    return config


def preset_names(method: Method) -> tuple[str, ...]:
    """``"paper"`` and the named presets of ``method``'s configuration class."""
    return (PAPER, *getattr(method.config, "presets", {}))


def with_preset(method: Method, config, preset: str | None):
    """``config`` with the fields of ``method``'s preset ``preset`` (``None`` / ``"paper"``: unchanged).

    Raises
    ------
    UsageError
        For a preset the method does not have, listing those it has.
    """
    if preset in (None, PAPER):
        return config
    presets = getattr(method.config, "presets", {})
    if preset not in presets:
        raise UsageError(
            f"method {method.name!r} has no preset {preset!r}; choose one of {', '.join(preset_names(method))}"
        )
    return dataclasses.replace(config, **presets[preset])


def option_keys(config) -> list[str]:
    """The fields of ``config`` that ``method_options`` may set (all but a guided method's ``modifiers``)."""
    return [f.name for f in fields(config) if f.name != "modifiers"]


def with_options(method: Method, config, options) -> object:
    """``config`` with the fields named in ``options`` (``(key, value)`` pairs) set.

    A value given as text is read as the type of the field's current value: ``int``, ``float``,
    ``bool`` (``true``/``false``), ``str``, or a tuple of floats written ``"0.9,0.999"``.

    Raises
    ------
    UsageError
        For a key that is not a field (listing the valid keys), a value of the wrong type, or a
        value the configuration refuses.
    """
    keys = option_keys(config)
    changes = {}
    for key, value in options:
        if key not in keys:
            valid = f"valid keys: {', '.join(keys)}" if keys else "it has no parameters"
            raise UsageError(f"{method.name} has no option {key!r} ({type(config).__name__}); {valid}")
        changes[key] = _read_value(method.name, key, value, getattr(config, key))
    try:
        return dataclasses.replace(config, **changes)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{method.name} option(s) {', '.join(changes)}: {error}") from None


def _read_value(method: str, key: str, value, current):
    """``value`` (text or typed) as the type of ``current``; a UsageError naming ``key`` otherwise."""
    kind = type(current)
    if not isinstance(value, str):
        if isinstance(current, tuple) and isinstance(value, (list, tuple)):
            return tuple(value)
        return value
    text = value.strip()
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if isinstance(current, tuple):
            return tuple(float(part) for part in text.split(","))
        if current is None:
            return float(text)
        return kind(text)
    except ValueError:
        wanted = {bool: "true or false", int: "an integer", float: "a number", tuple: "numbers like 0.9,0.999"}
        expected = wanted.get(tuple if isinstance(current, tuple) else kind, kind.__name__)
        raise UsageError(f"{method} option {key}={value!r}: expected {expected}") from None


def method_config(name: str, problem: InverseProblem | None = None, options: MethodOptions | None = None) -> dict:
    """The parameters method ``name`` uses on ``problem``, in its publication's units, as a JSON-ready dict."""
    config = configure(name, problem, options)
    return {"name": type(config).__name__, **dataclasses.asdict(config)}


def solve(method: str, problem: InverseProblem, options: MethodOptions, config=None) -> Reconstruction:
    """Run registered method ``method`` (suffixes allowed on diffusion methods) on ``problem``.

    ``config`` replaces the publication's configuration (e.g. a calibrated preset); by default it
    is :func:`configure`'s. With ``options.solver_dt`` the method sees
    ``problem.with_solver_dt(options.solver_dt)``.
    """
    entry, _ = split_method(method)
    if options.solver_dt is not None:
        problem = problem.with_solver_dt(options.solver_dt)
    if entry.needs_prior:
        problem.check_prior(options.prior)
    if config is None:
        config = configure(method, problem, options)
    elif not isinstance(config, entry.config):
        raise ValueError(f"method {entry.name!r} takes a {entry.config.__name__}, got {type(config).__name__}")
    return entry.run(problem, config, options)


def parse_method(name: str) -> tuple[str, str | None]:
    """``"fundps+equireg-d4"`` -> ``("fundps", "+equireg-d4")``: the base name and its EquiReg suffix (or ``None``)."""
    method, suffixes = split_method(name)
    equireg = [s for s in suffixes if s.startswith("+equireg")]
    return method.name, equireg[0] if equireg else None


def split_repa(name: str) -> tuple[str, bool]:
    """``"psld+repa"`` -> ``("psld", True)``: the name without ``+repa`` and whether it had it."""
    parts = name.split("+")
    return "+".join(p for p in parts if p != "repa"), "repa" in parts[1:]


class KindView:
    """The registered names of one kind, read when asked (``name in BASELINES``)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __contains__(self, name: object) -> bool:
        return name in METHODS and METHODS[name].kind == self.kind

    def __iter__(self):
        return iter(sorted(n for n, m in METHODS.items() if m.kind == self.kind))


GUIDED = KindView("guided")
BASELINES = KindView("baseline")
PARTICLES = KindView("particle")
