"""``sample(starts="pathfinder")``: multi-path Pathfinder moves every chain's random start into the
posterior's main mode (``fpl.runtime.inits.pathfinder_starts``), the fix for chains that
strand in a minor mode (hudson_lynx_hare-lotka_volterra, issue 13)."""

import jax
import jax.numpy as jnp
import numpy as np

import fpl
from fpl.runtime.inits import find_inits, pathfinder_starts

# Two modes 8 apart with sd 0.5: the barrier between them is ~exp(-32) deep, so a chain
# that starts in one never crosses to the other.  The mode at -4 holds exp(-20) ~ 2e-9
# of the mass: it is a local optimum an L-BFGS path from x < 0 ends in.
TWO_MODES = """
param x: real
target += log_sum_exp(normal_lpdf(x | 4, 0.5), normal_lpdf(x | -4, 0.5) - 20)
"""

# A standard normal: one mode, so the starts are draws of it (spread, not one point).
NORMAL = """
param x: real[3]
x ~ normal(0, 1)
"""


def _bound(source):
    model = fpl.compile(source)
    cm = model.bind({}, None)
    return cm, {k: jnp.asarray(v) for k, v in cm.prepare_data().items()}


def _starts(cm, args, values, seed=3):
    starts = [{"x": jnp.asarray(v, float)} for v in values]
    return [float(np.ravel(u["x"])[0]) for u in pathfinder_starts(cm, args, starts, seed)]


def test_chains_started_in_a_minor_mode_move_to_the_main_one():
    with jax.enable_x64(True):
        cm, args = _bound(TWO_MODES)
        # three chains start in the minor mode's basin, one in the main mode's
        moved = _starts(cm, args, [-3.5, -4.2, -3.9, 3.7])
    # the main mode's draws outweigh the minor mode's by ~exp(20): every start lies
    # within 4 sds (2) of x = 4, and no two chains share one
    assert all(abs(x - 4) < 2 for x in moved), moved
    assert len(set(moved)) == 4


def test_without_a_path_to_the_main_mode_the_starts_stay():
    """The limit of the method: if no path finds the main mode, the chains start where
    the paths went (each in the mode its start was in), never somewhere worse."""
    with jax.enable_x64(True):
        cm, args = _bound(TWO_MODES)
        moved = _starts(cm, args, [-3.5, -4.2])
    assert all(abs(x + 4) < 2 for x in moved), moved


def test_starts_are_spread_draws_and_reproducible():
    with jax.enable_x64(True):
        cm, args = _bound(NORMAL)
        first = find_inits(cm, args, 4, 11, None, pathfinder=True)
        again = find_inits(cm, args, 4, 11, None, pathfinder=True)
        other = find_inits(cm, args, 4, 12, None, pathfinder=True)
    points = np.stack([np.asarray(u["x"]) for u in first])
    np.testing.assert_array_equal(points, np.stack([np.asarray(u["x"]) for u in again]))
    assert not np.array_equal(points, np.stack([np.asarray(u["x"]) for u in other]))
    # draws of N(0, I): distinct, none at the mode, all within 5 sds (a 4-draw pick from
    # 4 x PATH_DRAWS importance-weighted draws lies that far out with probability < 1e-4)
    assert len({tuple(p) for p in points}) == 4
    assert np.all(np.linalg.norm(points, axis=1) > 1e-3)
    assert np.all(np.abs(points) < 5), points


def test_given_inits_are_kept():
    with jax.enable_x64(True):
        cm, args = _bound(NORMAL)
        inits = find_inits(cm, args, 2, 1, {"x": [0.5, 1.5, -2.0]}, pathfinder=True)
    for u in inits:
        np.testing.assert_allclose(np.asarray(u["x"]), [0.5, 1.5, -2.0])


def test_sample_uses_pathfinder_starts_only_when_asked(monkeypatch, tmp_path):
    # `starts` reaches find_inits from the API and the CLI; the default (Stan's random
    # starts) never pays Pathfinder's compile
    import fpl.runtime.inits as inits
    from fpl.runtime.cli import main

    calls = []

    def spy(cm, args, starts, seed, evaluate=None):
        calls.append(seed)
        return starts

    monkeypatch.setattr(inits, "pathfinder_starts", spy)
    model = fpl.compile(NORMAL)
    settings = {"chains": 1, "warmup": 20, "draws": 10, "progress": False}
    model.sample({}, seed=5, **settings)
    assert calls == []
    model.sample({}, seed=5, starts="pathfinder", **settings)
    assert calls == [5]
    path = tmp_path / "normal.fpl"
    path.write_text(NORMAL)
    cli = ["sample", str(path), "--chains", "1", "--warmup", "20", "--draws", "10"]
    assert main([*cli, "--seed", "6", "--starts", "pathfinder"]) == 0
    assert calls == [5, 6]
    assert main([*cli, "--starts", "optimize"]) == 2  # not a choice: a usage error
    assert calls == [5, 6]
