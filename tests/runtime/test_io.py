"""Fit files: atomic writes, round trips in all three formats, and bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fpl.dsl.diagnostics import FplError
from fpl.runtime.io import GROUPS, FitData, load_fit, save_fit, write_atomic
from fpl.runtime.netcdf import arviz_datasets, arviz_major, to_arviz

#: the groups the committed fixtures (written before FPL had the others) hold
FIXTURE_GROUPS = (
    "posterior",
    "sample_stats",
    "observed_data",
    "log_likelihood",
    "posterior_predictive",
)


def make_fit(chains: int = 2, draws: int = 5, seed: int = 0) -> FitData:
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    posterior = {
        "mu": rng.normal(size=shape),
        "theta": rng.normal(size=(*shape, 3)),
        "Sigma": rng.normal(size=(*shape, 2, 3)),
    }
    posterior["mu"][0, 1] = np.nan  # non-finite draws must survive every format
    posterior["theta"][1, 0, 2] = -np.inf
    return FitData(
        posterior=posterior,
        sample_stats={
            "lp": rng.normal(size=shape),
            "accept_stat": rng.random(shape),
            "step_size": np.full(shape, 0.25),
            "tree_depth": rng.integers(1, 6, shape),
            "n_leapfrog": rng.integers(1, 40, shape),
            "diverging": rng.random(shape) < 0.3,
            "energy": rng.normal(size=shape),
        },
        warmup_sample_stats={
            "lp": rng.normal(size=(chains, 4)),
            "diverging": rng.random((chains, 4)) < 0.5,
            "tree_depth": rng.integers(1, 6, (chains, 4)),
        },
        observed_data={"y": np.array([1.0, 2.5, np.inf])},
        constant_data={"N": np.array(3), "x": np.array([0.5, -1.0, 2.0])},
        log_likelihood={"y": rng.normal(size=(*shape, 3))},
        posterior_predictive={"y_rep": rng.normal(size=(*shape, 3))},
        unconstrained_posterior={"mu": rng.normal(size=shape)},
        adaptation={
            "step_size": rng.random(chains),
            "inv_metric": rng.random((chains, 10)),
            "metric_U": rng.normal(size=(chains, 10, 2)),
        },
        attrs={"model": "eight_schools", "fpl_version": "0.1.0", "seed": 42, "scale": 1.5},
    )


def assert_same(a: FitData, b: FitData, *, exact_dtypes: bool, groups=GROUPS) -> None:
    for group in groups:
        left, right = getattr(a, group), getattr(b, group)
        assert list(left) == list(right), group
        for name in left:
            assert left[name].shape == right[name].shape, (group, name)
            # Reals are written so that they read back bit for bit: no tolerance.
            np.testing.assert_array_equal(left[name], right[name], err_msg=f"{group}.{name}")
            if exact_dtypes:
                assert left[name].dtype == right[name].dtype, (group, name)
    assert a.attrs == b.attrs
    assert [type(v) for v in a.attrs.values()] == [type(v) for v in b.attrs.values()]


@pytest.mark.parametrize("ext", ["nc", "json"])
def test_round_trip(tmp_path: Path, ext: str) -> None:
    fit = make_fit()
    path = tmp_path / f"fit.{ext}"
    save_fit(str(path), fit)
    back = load_fit(str(path))
    assert_same(fit, back, exact_dtypes=True)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def arviz_groups(data) -> dict[str, xr.Dataset]:
    """The groups of ArviZ data as Datasets, checking the container is the installed major's."""
    import arviz as az

    if arviz_major(az.__version__) >= 1:
        assert isinstance(data, xr.DataTree)
        assert not data.ds.variables  # the groups are the root's children; the root is empty
        return {name: node.to_dataset() for name, node in data.children.items()}
    assert isinstance(data, az.InferenceData)
    return {name: data[name] for name in data.groups()}


def test_netcdf_is_plain_arviz(tmp_path: Path) -> None:
    import arviz as az

    path = tmp_path / "fit.nc"
    save_fit(str(path), make_fit())
    idata = az.from_netcdf(str(path))  # InferenceData on ArviZ 0.x, DataTree on 1.x
    assert set(arviz_groups(idata)) == set(GROUPS)
    assert idata.warmup_sample_stats["diverging"].dims == ("chain", "draw")
    assert idata.adaptation["metric_U"].dims == ("chain", "metric_U_dim_0", "metric_U_dim_1")
    assert set(idata.constant_data) == {"N", "x"} and set(idata.observed_data) == {"y"}
    # the replicate of the observed `y` is named `y` (az.plot_ppc pairs them)
    assert set(idata.posterior_predictive) == {"y"}
    assert idata.posterior_predictive["y"].attrs["fpl_name"] == "y_rep"
    assert idata.posterior["Sigma"].dims == ("chain", "draw", "Sigma_dim_0", "Sigma_dim_1")
    assert idata.observed_data["y"].dims == ("y_dim_0",)
    assert "acceptance_rate" in idata.sample_stats and "n_steps" in idata.sample_stats
    assert idata.posterior.attrs["model"] == "eight_schools"
    summary = az.summary(idata, var_names=["Sigma"])  # ArviZ can use it directly
    assert len(summary) == 6


def test_to_arviz_holds_what_the_file_holds(tmp_path: Path) -> None:
    import arviz as az

    fit = make_fit()
    path = tmp_path / "fit.nc"
    save_fit(str(path), fit)
    in_memory = arviz_groups(to_arviz(fit))
    on_disk = arviz_groups(az.from_netcdf(str(path)))
    expected = arviz_datasets(fit)
    assert list(expected) == list(GROUPS)
    assert set(in_memory) == set(on_disk) == set(GROUPS)  # InferenceData orders them its way
    for group, dataset in expected.items():
        xr.testing.assert_identical(in_memory[group], dataset)
        xr.testing.assert_identical(on_disk[group], dataset)
    assert in_memory["sample_stats"]["diverging"].dtype == np.bool_
    assert in_memory["posterior"].attrs == fit.attrs  # plain values, not text
    only_draws = FitData(posterior={"mu": np.zeros((1, 3))})
    assert list(arviz_groups(to_arviz(only_draws))) == ["posterior"]


# Fits saved through each ArviZ major's own writer (InferenceData.to_netcdf on 0.x, which is
# also how fpl wrote .nc files before; xarray.DataTree.to_netcdf on 1.x), committed so that
# each major's reader is checked against the other's file.  Remake one with
# `python tests/runtime/test_io.py` in an environment with that major installed.
FIXTURES = Path(__file__).parent / "fixtures"


def fixture_fit() -> FitData:
    """A tiny fit without random numbers, so the committed files match it forever."""
    base = np.arange(6.0).reshape(2, 3) / 4
    mu = base.copy()
    mu[0, 1] = np.nan
    theta = np.stack([base, -base / 3], axis=-1)
    theta[1, 0, 1] = -np.inf
    return FitData(
        posterior={"mu": mu, "theta": theta},
        sample_stats={
            "lp": -base,
            "accept_stat": base / 2,
            "tree_depth": np.arange(6).reshape(2, 3),
            "n_leapfrog": np.arange(6).reshape(2, 3) * 3 + 1,
            "diverging": np.array([[False, True, False], [False, False, True]]),
        },
        observed_data={"y": np.array([0.5, -1.25]), "N": np.array(2)},
        log_likelihood={"y": np.stack([base, base - 1], axis=-1)},
        posterior_predictive={"y_rep": np.stack([base * 2, base + 1], axis=-1)},
        attrs={"model": "fixture", "seed": 7, "scale": 0.5},
    )


@pytest.mark.parametrize("major", [0, 1])
def test_reads_netcdf_written_under_either_arviz_major(tmp_path: Path, major: int) -> None:
    import arviz as az

    path = FIXTURES / f"fit_arviz{major}.nc"
    assert_same(load_fit(str(path)), fixture_fit(), exact_dtypes=True)
    groups = arviz_groups(az.from_netcdf(str(path)))  # and the installed ArviZ reads it
    assert set(groups) == set(FIXTURE_GROUPS)
    assert groups["posterior"]["theta"].dims == ("chain", "draw", "theta_dim_0")
    copy = tmp_path / "again.nc"  # written here, under the installed major
    save_fit(str(copy), load_fit(str(path)))
    assert_same(load_fit(str(copy)), fixture_fit(), exact_dtypes=True)


def test_json_is_standard_json(tmp_path: Path) -> None:
    path = tmp_path / "fit.json"
    save_fit(str(path), make_fit())

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    document = json.loads(path.read_text(), parse_constant=refuse)
    assert document["posterior"]["mu"][0][1] == "NaN"
    assert document["attrs"]["seed"] == 42
    assert len(document["posterior"]["Sigma"]) == 2  # chains outermost


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "fit.json"
    save_fit(str(path), make_fit(seed=1))
    save_fit(str(path), make_fit(seed=2))
    assert_same(load_fit(str(path)), make_fit(seed=2), exact_dtypes=True)


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(FplError) as info:
        save_fit(str(tmp_path / "fit.txt"), make_fit())
    assert info.value.code == "E0502"
    helptext = info.value.diagnostics[0].help or ""
    assert all(ext in helptext for ext in (".nc", ".csv", ".json"))
    assert not list(tmp_path.iterdir())
    (tmp_path / "fit.txt").write_text("x")
    with pytest.raises(FplError) as info:
        load_fit(str(tmp_path / "fit.txt"))
    assert info.value.code == "E0404"


@pytest.mark.parametrize("ext", ["nc", "json", "csv"])
def test_missing_file(tmp_path: Path, ext: str) -> None:
    path = str(tmp_path / f"nope.{ext}")
    with pytest.raises(FplError) as info:
        load_fit(path)
    assert info.value.code == "E0501" and path in str(info.value)


def test_unwritable_destination(tmp_path: Path) -> None:
    path = str(tmp_path / "no" / "such" / "dir" / "fit.json")
    with pytest.raises(FplError) as info:
        save_fit(path, make_fit())
    assert info.value.code == "E0502" and path in str(info.value)


BAD_FILES = {
    "garbage.nc": b"this is not hdf5",
    "syntax.json": b'{"posterior": {"mu": [[1, 2]]',
    "flat.json": b'{"posterior": {"mu": [1, 2, 3]}}',
    "ragged.json": b'{"posterior": {"mu": [[1, 2], [3]]}}',
    "mismatch.json": b'{"posterior": {"a": [[1, 2]], "b": [[1, 2, 3]]}}',
    "attrs.json": b'{"attrs": {"seed": [1]}}',
    "array.json": b"[1, 2]",
    "noheader.csv": b"# model = m\n",
    "words.csv": b"lp__,mu\n1,abc\n",
    "short.csv": b"lp__,mu\n1\n",
    "holes.csv": b"lp__,a.1,a.3\n1,0,0\n",
    "rank.csv": b"lp__,a.1,a.1.1\n1,0,0\n",
    "zero.csv": b"lp__,a.0\n1,0\n",
    "badname.csv": b"lp__,a.x\n1,0\n",
    "nodraws.csv": b"lp__,mu\n",
    "binary.csv": b"\xff\xfe\x00",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_e0404(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    with pytest.raises(FplError) as info:
        load_fit(str(path))
    assert info.value.code == "E0404"
    assert str(path) in str(info.value)


def test_write_atomic_writes_through_a_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    seen: list[str] = []

    def write(temp: str) -> None:
        seen.append(temp)
        assert os.path.dirname(temp) == str(tmp_path)  # same folder: the rename is atomic
        assert not path.exists()  # nothing appears under the final name until it is done
        Path(temp).write_text("hello")

    write_atomic(str(path), write)
    assert path.read_text() == "hello"
    assert not os.path.exists(seen[0])
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), ValueError("boom")])
def test_write_atomic_failure_keeps_the_old_file(tmp_path: Path, exc: Exception) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")

    def write(temp: str) -> None:
        Path(temp).write_text("half-writ")
        raise exc

    with pytest.raises(FplError) as info:
        write_atomic(str(path), write)
    assert info.value.code == "E0502" and str(path) in str(info.value)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_atomic_passes_fpl_errors_through(tmp_path: Path) -> None:
    from fpl.dsl.diagnostics import error

    def write(temp: str) -> None:
        raise error("E0305", "bad data")

    with pytest.raises(FplError) as info:
        write_atomic(str(tmp_path / "x"), write)
    assert info.value.code == "E0305"
    assert not list(tmp_path.iterdir())


def test_empty_groups_round_trip(tmp_path: Path) -> None:
    fit = FitData(posterior={"mu": np.arange(6.0).reshape(2, 3)}, attrs={"model": "m"})
    for ext in ("nc", "json", "csv"):
        path = tmp_path / f"small.{ext}"
        save_fit(str(path), fit)
        assert_same(fit, load_fit(str(path)), exact_dtypes=True)


@pytest.mark.parametrize("ext", ["nc", "json", "csv"])
def test_attrs_of_other_types_are_stored_plainly(tmp_path: Path, ext: str) -> None:
    fit = FitData(
        posterior={"mu": np.zeros((1, 4))},
        attrs={"adapt": True, "depth": np.int64(10), "tags": ["a", "b"]},
    )
    path = tmp_path / f"fit.{ext}"
    save_fit(str(path), fit)
    assert load_fit(str(path)).attrs == {"adapt": 1, "depth": 10, "tags": "['a', 'b']"}


if __name__ == "__main__":
    import arviz as az

    FIXTURES.mkdir(exist_ok=True)
    major = arviz_major(az.__version__)
    out = FIXTURES / f"fit_arviz{major}.nc"
    # Uncompressed keeps the file small (zlib'd files are read by the round trips above).
    options = {"compress": False} if major == 0 else {}
    to_arviz(fixture_fit()).to_netcdf(str(out), engine="h5netcdf", **options)
    print(f"wrote {out} with arviz {az.__version__}")


@pytest.mark.parametrize("ext", [".nc", ".csv", ".json"])
def test_load_fit_gives_back_a_fit(tmp_path, ext):
    """``fpl.load_fit`` returns a ``Fit`` (summary, draws, to_arviz, save), not the I/O
    layer's FitData, with the saved draws exactly."""
    import fpl

    model = fpl.compile(
        "data N: int\ndata y: real[N]\nparam mu ~ normal(0, 5)\ny ~ normal(mu, 1)\n"
        "gen y_rep ~ normal(mu, 1)\n"
    )
    fit = model.sample(
        {"y": [0.5, 1.5, 1.0]}, chains=2, warmup=50, draws=20, seed=2, progress=False
    )
    path = tmp_path / f"fit{ext}"
    fit.save(str(path))
    back = fpl.load_fit(str(path))
    assert isinstance(back, fpl.Fit)
    np.testing.assert_array_equal(back.draws("mu"), fit.draws("mu"))
    assert back.summary()["mu"].mean == fit.summary()["mu"].mean
    assert back.to_arviz() is not None and back.model == fit.model
    again = tmp_path / f"again{ext}"
    back.save(str(again))
    np.testing.assert_array_equal(fpl.load_fit(str(again)).draws("mu"), fit.draws("mu"))
