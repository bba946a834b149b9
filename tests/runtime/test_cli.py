"""The command line: exit codes, outputs, diagnostics without tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

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
    header = [ln for ln in out_csv.read_text().splitlines() if not ln.startswith("#")][0]
    assert "lp__" in header and "tau" in header
    again = run_cli("summary", out_csv)
    assert again.returncode == 0 and "theta_tilde[1]" in again.stdout
