"""Optax optimizers named on the command line (``--optimizer adam --lr 1e-2 --schedule
cosine``) and the loss-curve plot (``--plot``) of ``fpl optimize`` and ``fpl vi``.

The Python API takes any optax ``GradientTransformation`` itself (``optimizer=``); these
command-line-only options build one (:class:`OptimizerOptions`, a
:class:`~fpl.runtime.methods.CommandOptions` of the methods table).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fpl.dsl.diagnostics import error
from fpl.runtime.methods import CommandOptions, Settings, option

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "lbfgs")
SCHEDULES = ("constant", "cosine", "exponential", "warmup_cosine")
DEFAULT_LR = 1e-2
EXP_FINAL = 0.01  # `exponential`: the rate decays to EXP_FINAL * lr over the run
WARMUP_FRACTION = 0.1  # `warmup_cosine`: linear warmup over this share of the steps


@dataclass(frozen=True)
class OptimizerOptions(CommandOptions):
    """``fpl optimize``'s optimizer, by name, and its loss plot."""

    optimizer: str = option("adam", "the optax optimizer", choices=OPTIMIZERS)
    lr: float | None = option(
        None, f"learning rate (none: {DEFAULT_LR}; lbfgs: 1 with a line search)", gt=0
    )
    schedule: str = option("constant", "learning-rate schedule over the steps", choices=SCHEDULES)
    plot: str | None = option(None, "write the loss per step (.png, .pdf, .svg; needs matplotlib)")

    def check(self) -> None:
        if self.optimizer == "lbfgs" and self.schedule != "constant":
            raise error("E0403", "lbfgs takes no `schedule` (its line search sets the steps)")
        if self.plot is not None:
            check_plot_path(self.plot)

    def apply(self, settings: Settings) -> dict:
        return {"optimizer": make_optimizer(self.optimizer, self.lr, self.schedule, settings.steps)}


@dataclass(frozen=True)
class StochasticOptimizerOptions(OptimizerOptions):
    """``fpl vi``'s: stochastic gradients, so no line search (no lbfgs)."""

    optimizer: str = option("adam", "the optax optimizer", choices=OPTIMIZERS[:-1])


def make_optimizer(name: str, lr: float | None, schedule: str, steps: int):
    """An optax optimizer from the command line's choices."""
    import optax

    if name == "lbfgs":
        return optax.lbfgs(learning_rate=lr)
    base = DEFAULT_LR if lr is None else lr
    if schedule == "constant":
        rate = base
    elif schedule == "cosine":
        rate = optax.cosine_decay_schedule(base, steps)
    elif schedule == "exponential":
        rate = optax.exponential_decay(base, transition_steps=steps, decay_rate=EXP_FINAL)
    else:
        warm = max(1, int(WARMUP_FRACTION * steps))
        rate = optax.warmup_cosine_decay_schedule(0.0, base, warm, max(steps, warm + 1))
    named = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop}
    return named[name](rate)


PLOT_FORMATS = (".png", ".pdf", ".svg")


def check_plot_path(path: str) -> None:
    """E0502 unless ``path`` is a .png, .pdf or .svg file in an existing folder (checked
    before the run as well as when plotting)."""
    if Path(path).suffix.lower() not in PLOT_FORMATS:
        raise error("E0502", f"cannot write `{path}`: use a .png, .pdf or .svg file")
    if not Path(path).parent.is_dir():
        raise error(
            "E0502", f"cannot write `{path}`: the folder `{Path(path).parent}` does not exist"
        )


def plot_loss(path: str, trace, title: str) -> None:
    """The loss per step, written atomically (matplotlib, Agg backend)."""
    from fpl.runtime.io import write_atomic

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise error("E0403", "`--plot` needs matplotlib", help="pip install 'fpl[plot]'") from None
    check_plot_path(path)
    suffix = Path(path).suffix.lower().lstrip(".")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(trace) + 1), trace, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if len(trace) and min(trace) > 0 and max(trace) / min(trace) > 100:
        ax.set_yscale("log")
    fig.tight_layout()
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, format=suffix))
    finally:
        plt.close(fig)


__all__ = ["OptimizerOptions", "StochasticOptimizerOptions", "make_optimizer", "plot_loss"]
