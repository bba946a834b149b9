"""The command line: exit codes, outputs, diagnostics without tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpl.runtime.cli import main

ROOT = Path(__file__).resolve().parents[2]
ES = ROOT / "examples" / "eight_schools.fpl"
ES_DATA = ROOT / "examples" / "eight_schools.json"


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "fpl", *map(str, args)], capture_output=True, text=True
    )


def test_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("fpl ")
    out = run_cli("--help")
    assert out.returncode == 0 and "sample" in out.stdout


def test_usage_error_exits_2():
    out = run_cli("sample")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_check_ok_and_model_error(tmp_path, capsys):
    assert main(["check", str(ES)]) == 0
    bad = tmp_path / "bad.fpl"
    bad.write_text("data J: int\nparam mu ~ nromal(0, 1)\n")
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "error[E0103]" in err and f"{bad}:2:12" in err and "did you mean `normal`" in err


def test_missing_file_is_located_error(capsys):
    assert main(["check", "/no/such/model.fpl"]) == 1
    assert "E0501" in capsys.readouterr().err


def test_json_error_format(tmp_path, capsys):
    bad = tmp_path / "bad.fpl"
    bad.write_text("param x: real\ny ~ normal(x, 1)\n")
    assert main(["--error-format", "json", "check", str(bad)]) == 1
    diag = json.loads(capsys.readouterr().err)[0]
    assert diag["code"] == "E0102"
    assert (diag["location"]["line"], diag["location"]["col"]) == (2, 1)


def test_data_error_names_field(tmp_path, capsys):
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"J": 8, "y": [1.0] * 8, "sigma": [1.0] * 7 + [-1.0]}))
    assert main(["check", str(ES), "--data", str(data)]) == 1
    err = capsys.readouterr().err
    line = next(i for i, t in enumerate(ES.read_text().splitlines(), 1) if "data sigma" in t)
    assert "E0304" in err and "sigma[8]" in err and f"eight_schools.fpl:{line}:1" in err


@pytest.mark.parametrize("emit,needle", [("ast", "DataDecl"), ("ir", "param  tau: real<lower=0>")])
def test_compile_emits(emit, needle, capsys):
    assert main(["compile", str(ES), "--emit", emit]) == 0
    assert needle in capsys.readouterr().out


def test_emitted_jaxpr_is_the_compiled_log_density(capsys):
    """--emit jaxpr prints the very program of the compiled log density (so it cannot
    drift from the lowering): evaluated, it gives the model's log density."""
    import jax
    import jax.numpy as jnp

    import fpl

    assert main(["compile", str(ES), "--emit", "jaxpr", "--data", str(ES_DATA)]) == 0
    text = capsys.readouterr().out
    assert "{ lambda" in text and "log" in text
    with jax.enable_x64(True):
        cm = fpl.load(ES).bind(json.loads(ES_DATA.read_text()))
        theta = jnp.linspace(-1.0, 1.0, cm.param_unc_num())
        data = {k: jnp.asarray(v) for k, v in cm.data.items()}
        closed = jax.make_jaxpr(lambda t, d: cm.log_density(t, data=d))(theta, data)
        assert str(closed) == text.rstrip("\n")  # the same program text
        (got,) = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, theta, *jax.tree.leaves(data))
        assert abs(float(got) - float(cm.log_density(theta))) < 1e-12


def test_emit_jaxpr_without_needed_data_is_a_coded_error(capsys):
    assert main(["compile", str(ES), "--emit", "jaxpr"]) == 1
    assert "E0301" in capsys.readouterr().err


def test_sample_writes_outputs_and_summary(tmp_path):
    out_csv = tmp_path / "fit.csv"
    out = run_cli(
        "sample",
        ES,
        "--data",
        ES_DATA,
        "--chains",
        2,
        "--warmup",
        200,
        "--draws",
        200,
        "--seed",
        3,
        "--quiet",
        "-o",
        out_csv,
    )
    assert out.returncode == 0, out.stderr
    assert "theta[8]" in out.stdout and "R_hat" in out.stdout
    # Stan CSV: one file per chain (CmdStan's naming), written files listed
    chain1 = tmp_path / "fit_1.csv"
    assert chain1.exists() and (tmp_path / "fit_2.csv").exists()
    header = [ln for ln in chain1.read_text().splitlines() if not ln.startswith("#")][0]
    assert "lp__" in header and "tau" in header
    assert "fit_1.csv" in out.stdout
    again = run_cli("summary", out_csv)
    assert again.returncode == 0 and "theta_tilde[1]" in again.stdout


def test_global_flags_are_accepted_after_the_subcommand(tmp_path, capsys):
    bad = tmp_path / "bad.fpl"
    bad.write_text("param x: real\ny ~ normal(x, 1)\n")
    for argv in (
        ["--error-format", "json", "check", str(bad)],
        ["check", str(bad), "--error-format", "json"],
        ["check", "--error-format=json", str(bad)],
    ):
        assert main(argv) == 1
        assert json.loads(capsys.readouterr().err)[0]["code"] == "E0102"
    assert main(["check", str(bad)]) == 1
    assert capsys.readouterr().err.startswith("error[E0102]")  # text by default


@pytest.mark.parametrize(
    "command,flags",
    [
        ("sample", ["--chains", "--warmup", "--draws", "--seed", "--target-accept", "--quiet"]),
        ("optimize", ["--steps", "--tol", "--seed", "--optimizer", "--lr", "--output"]),
        ("laplace", ["--draws", "--seed", "--tol", "--max-iter", "--data"]),
    ],
)
def test_help_shows_every_flags_help_and_default(command, flags, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for flag in flags:
        at = text.index(f" {flag} ")
        entry = text[at : text.find(" --", at + len(flag) + 2)]
        assert "(default: " in entry or "(required)" in entry, entry
    assert "(default: random, printed)" in text  # the seed
    assert "(default: None)" not in text  # defaults are shown as words


def _fail_if_run(monkeypatch):
    from fpl.runtime import methods

    def run(*args, **kwargs):
        raise AssertionError("the method ran despite a bad command line")

    monkeypatch.setattr(methods.Method, "__call__", run)


@pytest.mark.parametrize(
    "output,needle",
    [
        ("fit.txt", "unknown format `.txt`"),
        ("no/such/folder/fit.nc", "does not exist"),
        (".", "it is a folder"),
    ],
)
def test_bad_output_is_a_usage_error_before_the_run(output, needle, tmp_path, monkeypatch, capsys):
    _fail_if_run(monkeypatch)
    monkeypatch.chdir(tmp_path)
    if output == ".":
        output = str(tmp_path / "dir.nc")
        (tmp_path / "dir.nc").mkdir()
    argv = ["sample", str(ES), "--data", str(ES_DATA), "-o", output]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error[E0502]" in err and needle in err and "seed:" not in err
    # optimize writes .json and .nc (a one-draw fit), not Stan CSV
    assert main(["optimize", str(ES), "--data", str(ES_DATA), "-o", "r.csv"]) == 2
    assert "`-o` takes a file ending in .json, .nc" in capsys.readouterr().err
    assert main(["optimize", str(ES), "--data", str(ES_DATA), "--plot", "p.txt"]) == 2
    assert "E0502" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sample", "optimize"])
@pytest.mark.parametrize(
    "checkpoint,needle", [("no/such/folder/c.npz", "does not exist"), ("dir.npz", "it is a folder")]
)
def test_bad_checkpoint_is_a_usage_error_before_the_run(
    command, checkpoint, needle, tmp_path, monkeypatch, capsys
):
    # a checkpoint path that cannot be written once failed after the whole run, losing it
    _fail_if_run(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.npz").mkdir()
    argv = [command, str(ES), "--data", str(ES_DATA), "--checkpoint", checkpoint, "-o", "r.json"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error[E0502]" in err and "--checkpoint" in err and needle in err, err


@pytest.mark.parametrize("seed", ["-1", str(2**63), "1e3"])
def test_bad_seeds_are_usage_errors(seed, monkeypatch, capsys):
    _fail_if_run(monkeypatch)
    assert main(["sample", str(ES), "--data", str(ES_DATA), f"--seed={seed}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("E0403" in err or "invalid int value" in err)


TINY = "data y: real[3]\nparam mu ~ normal(0, 1)\ny ~ normal(mu, 1)\n"


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.fpl").write_text(TINY)
    (tmp_path / "d.json").write_text(json.dumps({"y": [1.0, 2.0, 3.0]}))
    return ["laplace", "m.fpl", "--data", "d.json", "--draws", "50"]


def test_a_drawn_seed_is_printed_and_stored(tiny, tmp_path, capsys):
    from fpl.runtime.fit import load_fit

    assert main([*tiny, "-o", "a.json"]) == 0
    err = capsys.readouterr().err
    seed = int(err.split("seed: ")[1].split()[0])
    assert load_fit("a.json").attrs["seed"] == seed
    # the printed seed repeats the run exactly
    assert main([*tiny, "--seed", str(seed), "-o", "b.json"]) == 0
    assert "seed:" not in capsys.readouterr().err  # given, so not printed
    a, b = load_fit("a.json"), load_fit("b.json")
    np.testing.assert_array_equal(a.posterior["mu"], b.posterior["mu"])


def test_a_failed_save_keeps_the_result_in_a_recovery_file(tiny, monkeypatch, capsys):
    from fpl.dsl.diagnostics import error
    from fpl.runtime.fit import Fit, load_fit

    save = Fit.save

    def failing(self, path):
        if Path(path).name == "out.nc":  # the requested file: the disk is full, say
            raise error("E0502", f"cannot write `{path}`: No space left on device")
        save(self, path)

    monkeypatch.setattr(Fit, "save", failing)
    assert main([*tiny, "--seed", "4", "-o", "out.nc"]) == 1
    captured = capsys.readouterr()
    assert "mu" in captured.out  # the summary came first
    assert "error[E0502]" in captured.err and "No space left on device" in captured.err
    kept = captured.err.split("the result was kept in `")[1].split("`")[0]
    assert Path(kept).name.startswith("out.recovered-") and kept.endswith(".nc")
    assert load_fit(kept).posterior["mu"].shape == (1, 50)
    Path(kept).unlink()


def test_parse_tables_are_cached_privately(tmp_path, monkeypatch):
    import os
    import stat

    from fpl.dsl import parser

    monkeypatch.setenv("FPL_CACHE_DIR", str(tmp_path / "cache"))
    grammar = parser._GRAMMAR.read_text()
    path = parser.table_cache_path(grammar)
    assert path.parent == tmp_path / "cache" / "lark"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    parser._lark.cache_clear()
    try:
        built = parser._lark()
        assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
        loaded = parser._load_tables(path)
        assert loaded is not None and loaded is not built
        program = "param x ~ normal(0, 1)\n"
        assert loaded.parse(program) == built.parse(program)
        # a corrupt cache is ignored (and rebuilt over)
        path.write_bytes(b"not a pickle")
        assert parser._load_tables(path) is None
        parser._lark.cache_clear()
        assert parser._lark().parse(program) == built.parse(program)
        assert parser._load_tables(path) is not None
        if hasattr(os, "getuid"):
            # a cache others can write to is never unpickled
            path.chmod(0o666)
            assert parser._load_tables(path) is None
            path.chmod(0o600)
            path.parent.chmod(0o777)
            assert parser.table_cache_path(grammar) is None
            path.parent.chmod(0o700)
        # an unusable cache folder only costs speed
        monkeypatch.setenv("FPL_CACHE_DIR", "/dev/null/cache")
        parser._lark.cache_clear()
        assert parser._lark().parse(program) == built.parse(program)
    finally:
        parser._lark.cache_clear()
