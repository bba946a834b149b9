"""Inference methods as one table: each method's settings are a frozen dataclass,
validated once with coded errors, and both the Python API (``Model.<method>``) and the
command line (``fpl <method>``) are built from the same fields.

A method is one :class:`Method` entry: its name, a line of help, its settings class and
the function that runs it (``module:function``, imported when the method runs, so the
CLI's help never imports JAX).  A settings field is declared with :func:`option`: its
default, its help text, its bounds or choices; the CLI flag (``--max-iter`` for
``max_iter``), its type, default and help come from there, and ``Settings`` checks the
bounds whether the values came from keywords or flags (E0403 naming the setting).

Optional hooks of a :class:`Method` cover what is not a setting: ``inputs`` (values the
API takes positionally and the CLI as a flag: ``predict``'s fit, ``diagnose``'s params),
``command`` (command-line-only options, themselves a :class:`CommandOptions` class of
``option`` fields, turned into settings by their ``apply``: ``--optimizer adam --lr
1e-2`` building an optax object, ``--plot``), ``report`` (what the CLI prints and writes
after the run) and the help of ``-o`` and ``--quiet``.

Adding an inference method is therefore one module (its settings class, its ``run``
function and a ``METHOD`` entry) plus its name in :data:`MODULES` — see
``docs/architecture.md``.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fpl.dsl.diagnostics import error

#: modules holding a ``METHOD`` entry (each one inference method), in the CLI's order
MODULES = (
    "fpl.runtime.sampling",
    "fpl.runtime.optimize",
    "fpl.runtime.laplace",
    "fpl.runtime.pathfinder",
    "fpl.runtime.vi",
    "fpl.runtime.predict",
    "fpl.runtime.diagnose",
)


def option(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    choices: tuple | None = None,
    cli: bool = True,
    flag: str | None = None,
    file: bool = False,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """A settings field.  ``min`` (inclusive), ``gt``/``lt`` (exclusive) bound numbers;
    ``choices`` lists the allowed values (a Python object such as a callable passes, for
    the method to check); ``cli=False`` keeps it out of the command line (Python objects
    such as an optax optimizer); ``flag`` overrides the flag's name; ``file=True`` marks a
    setting the CLI reads from a JSON file (e.g. ``--init init.json``); ``parse`` turns the
    flag's text into the value (e.g. a comma-separated list)."""
    meta = {
        "help": help,
        "min": min,
        "gt": gt,
        "lt": lt,
        "choices": choices,
        "cli": cli,
        "flag": flag,
        "file": file,
        "parse": parse,
    }
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of a settings field (``--max-iter`` for ``max_iter``)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _base_type(hint) -> type | None:
    """``int`` for ``int`` or ``int | None``; None for anything else."""
    if isinstance(hint, type):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and isinstance(args[0], type):
            return args[0]
    return None


#: every ``seed`` setting is in ``[0, SEED_LIMIT)``: JAX's and NumPy's generators take
#: it as a 64-bit integer
SEED_LIMIT = 2**63


def _check_field(name: str, value: Any, base: type | None, meta: Mapping[str, Any]) -> None:
    """E0403 unless ``value`` has the field's type, is one of its choices and within its
    bounds (a ``seed`` within ``[0, SEED_LIMIT)`` whatever its field says)."""
    if base in (int, float) and (
        isinstance(value, bool) or not isinstance(value, (int, float) if base is float else int)
    ):
        what = "an integer" if base is int else "a number"
        raise error("E0403", f"`{name}` must be {what}, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and not callable(value) and value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise error("E0403", f"`{name}` must be one of {shown}, got {value!r}")
    if base in (int, float):
        if meta.get("min") is not None and not value >= meta["min"]:
            raise error("E0403", f"`{name}` must be >= {meta['min']}, got {value!r}")
        if meta.get("gt") is not None and not value > meta["gt"]:
            raise error("E0403", f"`{name}` must be > {meta['gt']}, got {value!r}")
        if meta.get("lt") is not None and not value < meta["lt"]:
            raise error("E0403", f"`{name}` must be < {meta['lt']}, got {value!r}")
    if name == "seed" and not 0 <= value < SEED_LIMIT:
        raise error(
            "E0403",
            f"`seed` must be an integer in [0, 2**63), got {value!r}",
            help="any whole number from 0 to 9223372036854775807",
        )


@dataclass(frozen=True)
class Settings:
    """Base of every method's settings: fields declared with :func:`option`.  Each field
    is checked on construction (E0403), then :meth:`check` checks the combination."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                _check_field(f.name, value, _base_type(hints.get(f.name)), f.metadata)
        self.check()

    def check(self) -> None:
        """Checks across fields (E0403); none by default."""

    @classmethod
    def from_keywords(cls, **kwargs: Any):
        """Settings from keyword arguments (unknown names are E0403)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise error(
                "E0403",
                f"unknown setting `{unknown[0]}`",
                help="settings are: " + ", ".join(sorted(names)),
            )
        return cls(**kwargs)

    # ---- the command line, from the same fields ------------------------------------
    @classmethod
    def add_arguments(cls, parser) -> None:
        """A flag per field (``cli=False`` ones excepted), its help ending with the
        default."""
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if not meta.get("cli", True):
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            base = _base_type(hints.get(f.name))
            text = f"{meta.get('help', '')} (default: {_shown_default(f.name, default, base)})"
            if meta.get("file"):
                parser.add_argument(flag_of(f), dest=f.name, metavar="FILE.json", help=text)
            elif meta.get("choices") is None and base in (int, float, str):
                parser.add_argument(
                    flag_of(f),
                    dest=f.name,
                    type=meta.get("parse") or base,
                    default=default,
                    metavar={int: "N", float: "X"}.get(base, "TEXT"),
                    help=text,
                )
            elif base is bool:
                parser.add_argument(flag_of(f), dest=f.name, action="store_true", help=text)
            else:
                kind = meta.get("parse") or base or str
                parser.add_argument(
                    flag_of(f),
                    dest=f.name,
                    type=kind,
                    default=default,
                    choices=meta.get("choices"),
                    help=text,
                )

    @classmethod
    def cli_values(cls, args, read_file: Callable[[str], Any]) -> dict[str, Any]:
        """The fields' values from parsed flags, ``file=True`` ones read with
        ``read_file``; a ``progress`` setting is off under ``--quiet``."""
        values = {}
        for f in dataclasses.fields(cls):
            if f.name == "progress" and hasattr(args, "quiet"):
                values[f.name] = not args.quiet
            if not f.metadata.get("cli", True):
                continue
            value = getattr(args, f.name)
            if f.metadata.get("file") and value is not None:
                value = read_file(value)
            values[f.name] = value
        return values


def _shown_default(name: str, default: Any, base: type | None) -> str:
    """A default as ``--help`` shows it."""
    if name == "seed" and default is None:
        return "random, printed"
    if base is bool:
        return "on" if default else "off"
    return "none" if default is None else str(default)


@dataclass(frozen=True)
class CommandOptions(Settings):
    """Command-line-only options of a method (flags, help and checks from ``option``
    fields, like settings), which :meth:`apply` turns into settings values."""

    def apply(self, settings: Settings) -> dict[str, Any]:
        """Settings values built from these options (called once JAX is set up)."""
        return {}


@dataclass(frozen=True)
class Input:
    """A value a method takes besides data and settings: a positional argument of the
    API, a ``--<name>`` flag of the CLI (read as JSON where ``file``, else passed as the
    path itself)."""

    name: str
    help: str
    required: bool = False
    file: bool = False


OUTPUT_HELP = "write the draws: .nc (ArviZ netCDF), .csv or .json"


@dataclass(frozen=True)
class Method:
    """One inference method: ``run(model, data, settings, **inputs)`` returns its result
    (a ``Fit`` unless the method's ``report`` says otherwise)."""

    name: str
    help: str
    settings: type[Settings]
    run: str  # "module:function", imported when the method runs
    #: printed before the summary (CLI): fit -> line, or None
    headline: Callable[[Any], str] | None = None
    #: values besides data and settings (API: keywords ``run_method`` passes on; CLI: flags)
    inputs: tuple[Input, ...] = ()
    #: command-line-only options, turned into settings by their ``apply``
    command: type[CommandOptions] | None = None
    #: the CLI's output after the run: (model, result, args) -> exit code; None: the
    #: default (write ``-o``, unless ``--quiet`` the headline and the summary)
    report: Callable[[Any, Any, Any], int] | None = None
    #: help of ``-o`` (None: no such flag) and of ``--quiet`` (None: no such flag)
    output: str | None = OUTPUT_HELP
    quiet: str | None = "print no summary"
    #: the extensions ``-o`` takes (checked before the run)
    output_formats: tuple[str, ...] = (".nc", ".csv", ".json")

    def __call__(self, model, data, settings: Settings, **inputs: Any):
        module, function = self.run.split(":")
        run = getattr(importlib.import_module(module), function)
        return run(model, data, settings, **inputs)


def methods() -> dict[str, Method]:
    """Every registered inference method by name (imports only the method modules'
    settings, not JAX)."""
    out: dict[str, Method] = {}
    for name in MODULES:
        method = importlib.import_module(name).METHOD
        out[method.name] = method
    return out


def run_method(name: str, model, data, settings: Settings | None = None, **kwargs: Any):
    """``Model.<name>(data, **kwargs)``: the method with settings from ``settings`` or
    the keywords (validated the same way the CLI's flags are); keywords naming the
    method's inputs are passed on to it."""
    method = methods()[name]
    inputs = {i.name: kwargs.pop(i.name, None) for i in method.inputs}
    for i in method.inputs:
        if i.required and inputs[i.name] is None:
            raise error("E0403", f"`{name}` needs `{i.name}`")
    if settings is None:
        settings = method.settings.from_keywords(**kwargs)
    elif kwargs:
        settings = dataclasses.replace(settings, **kwargs)
    return method(model, data, settings, **inputs)


def settings_dict(settings: Settings) -> Mapping[str, Any]:
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


__all__ = [
    "MODULES",
    "SEED_LIMIT",
    "CommandOptions",
    "Input",
    "Method",
    "Settings",
    "flag_of",
    "methods",
    "option",
    "run_method",
    "settings_dict",
]
