"""The methods table: every inference method's command line is built from its settings
fields (a flag per setting, its help ending with the default), and the API and the CLI
reject the same bad value with the same coded message (E0403; the CLI exits 2)."""

import dataclasses
import json

import pytest

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.cli import EXIT_USAGE, _parser, main
from fpl.runtime.methods import Settings, flag_of, methods, option

MODEL = """
data N: int
data y: real[N]
param mu ~ normal(0, 5)
y ~ normal(mu, 1)
"""
DATA = {"N": 3, "y": [0.5, 1.0, 1.5]}

# One row per method: a bad value as keywords and as flags (a test checks every method
# of the table has its row).
BAD = {
    "sample": ({"chains": 0}, ["--chains", "0"]),
    "optimize": ({"steps": 0}, ["--steps", "0"]),
    "laplace": ({"draws": 0}, ["--draws", "0"]),
    "pathfinder": ({"history": 0}, ["--history", "0"]),
    "vi": ({"particles": 0}, ["--particles", "0"]),
    "predict": ({"seed": -1}, ["--seed", "-1"]),
    "diagnose": ({"probes": 0}, ["--probes", "0"]),
}
# settings that are bad only together (each method's `check`)
BAD_TOGETHER = {
    "sample": ({"every": 10}, ["--every", "10"]),
    "optimize": ({"resume": True}, ["--resume"]),
}


def _shown(f: dataclasses.Field):
    """The default as --help words it: a seed left out is drawn and printed, no value is
    "none", a switch "on" or "off"."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if f.name == "seed" and default is None:
        return "random, printed"
    if isinstance(default, bool):
        return "on" if default else "off"
    return "none" if default is None else default


def _subparsers():
    parser = _parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices


@pytest.mark.parametrize("name", sorted(methods()))
def test_every_setting_has_its_flag_and_default_in_the_help(name, capsys):
    method = methods()[name]
    actions = {s: a for a in _subparsers()[name]._actions for s in a.option_strings}
    assert main([name, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    classes = [method.settings, *([method.command] if method.command else [])]
    for cls in classes:
        for f in dataclasses.fields(cls):
            if not f.metadata.get("cli", True):
                continue
            action = actions.get(flag_of(f))
            assert action is not None, (name, f.name)
            assert action.dest == f.name
            assert action.help.endswith(f"(default: {_shown(f)})"), (name, f.name, action.help)
            if not f.metadata.get("file") and f.default is not dataclasses.MISSING:
                assert action.default == f.default, (name, f.name)
            assert f"{flag_of(f)} " in text and f"(default: {_shown(f)})" in text
    for i in method.inputs:
        assert f"--{i.name}" in actions and actions[f"--{i.name}"].required == i.required


def test_every_method_has_a_row():
    assert set(BAD) == set(methods())


@pytest.mark.parametrize("table", [BAD, BAD_TOGETHER], ids=["one", "together"])
def test_api_and_cli_reject_a_bad_value_alike(table, tmp_path, capsys):
    model = fpl.compile(MODEL)
    (tmp_path / "m.fpl").write_text(MODEL)
    (tmp_path / "d.json").write_text(json.dumps(DATA))
    for name, (keywords, flags) in table.items():
        call = getattr(model, name)
        with pytest.raises(FplError) as api:
            if name == "predict":
                call(str(tmp_path / "fit.nc"), DATA, **keywords)
            else:
                call(DATA, **keywords)
        assert api.value.code == "E0403", name
        argv = [name, str(tmp_path / "m.fpl"), "--data", str(tmp_path / "d.json"), *flags]
        if name == "predict":
            argv += ["--fit", str(tmp_path / "fit.nc")]
        capsys.readouterr()
        assert main(argv) == EXIT_USAGE, name
        err = capsys.readouterr().err
        assert api.value.render() in err, (name, err)  # the same coded message


def test_unknown_keyword_is_coded():
    with pytest.raises(FplError, match="E0403.*unknown setting `chians`"):
        fpl.compile(MODEL).sample(DATA, chians=2)


def test_options_are_checked_on_construction():
    """Types, bounds and choices from the fields; `check` across fields."""

    @dataclasses.dataclass(frozen=True)
    class Demo(Settings):
        n: int = option(1, "a count", min=1)
        rate: float = option(0.5, "a rate", gt=0, lt=1)
        kind: str = option("a", "a kind", choices=("a", "b"))

        def check(self):
            if self.kind == "b" and self.n > 1:
                raise fpl.dsl.diagnostics.error("E0403", "`b` takes one")

    Demo(n=3, rate=0.1, kind="a")
    Demo(kind=lambda: None)  # a Python object passes the choices, for the method to check
    for bad in (
        {"n": 0},
        {"n": 1.5},
        {"n": True},
        {"rate": 1.0},
        {"kind": "c"},
        {"kind": "b", "n": 2},
    ):
        with pytest.raises(FplError) as e:
            Demo(**bad)
        assert e.value.code == "E0403", bad


def test_every_seed_is_checked_against_the_64_bit_range():
    from fpl.dsl.diagnostics import FplError
    from fpl.runtime.methods import SEED_LIMIT, methods

    for method in methods().values():
        names = {f.name for f in dataclasses.fields(method.settings)}
        if "seed" not in names:
            continue
        method.settings(seed=SEED_LIMIT - 1)  # the largest seed is fine
        for bad in (SEED_LIMIT, -1):
            with pytest.raises(FplError) as info:
                method.settings(seed=bad)
            assert info.value.code == "E0403" and "seed" in str(info.value)
