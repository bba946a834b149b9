"""Stan CSV: fits as CmdStan writes them, one file per chain, and CmdStan's files read back.

Saving ``fit.csv`` writes ``fit_1.csv``, ``fit_2.csv``, ... (one per chain, CmdStan's
naming; a single chain is ``fit.csv`` itself) and removes stale ``fit_K.csv`` files of a
larger earlier run.  Each file is what ``cmdstanpy.from_csv`` and ``arviz.from_cmdstan``
read (checked by tests with both):

* ``#`` comments with CmdStan's settings tree (``model``, ``method = sample``,
  ``num_samples``, ``num_warmup``, ``save_warmup``, ``thin``, ``adapt``'s ``delta``,
  ``algorithm = hmc``, ``engine = nuts``, ``max_depth``, ``metric = diag_e|dense_e``,
  ``id``, ``seed``), then FPL's own section ``# fpl`` with every attribute as
  ``fpl[<key>] = <value>`` (brackets: CmdStan's readers look for ``metric =`` and
  the like anywhere in a line), the data as JSON (``fpl_observed_data``,
  ``fpl_constant_data``), the names of the gens (``fpl_generated``) and adaptation
  arrays beyond step size and metric (``fpl_adaptation.<name>``);
* one header row: the sampler's columns under Stan's names (``lp__``,
  ``accept_stat__``, ``stepsize__``, ``treedepth__``, ``n_leapfrog__``,
  ``divergent__``, ``energy__``, those present), then params and outs, then gens,
  each array's components column-major (``Sigma.1.1``, ``Sigma.2.1``, ...), 1-based;
* the warmup rows when they were kept (Stan's ``save_warmup`` layout; FPL keeps the
  warmup's sampler statistics, not its draws, so the other columns are ``nan``), then the
  adaptation block (``# Adaptation terminated``, ``# Step size = ...``, the inverse
  metric: one line for ``diag_e``, d lines for ``dense_e``, a low-rank metric written
  in its dense form), then one row per draw, then the timing block.

What Stan CSV has no place for is not written: the automatic pointwise
log-likelihood (a ``gen log_lik...`` the model declares is a column like any gen),
the unconstrained draws, and sample statistics other than Stan's (implicit nodes'
solver statistics); the ``.nc`` and ``.json`` formats keep everything.  Reals are
written with ``repr`` and read back bit for bit.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any

import numpy as np

from fpl.runtime.io import (
    INT_STATS,
    STAN_COLUMNS,
    Attr,
    FitData,
    bad_file,
    json_group,
    read_text,
    write_text,
)
from fpl.runtime.jsondata import to_json_value

_SECONDS = re.compile(r"([-+0-9.eE]+|nan|inf) seconds \((Warm-up|Sampling|Total)\)")
_PHASES = {"Warm-up": "warmup_seconds", "Sampling": "sampling_seconds", "Total": "seconds"}


def column_names(label: str, shape: tuple[int, ...]) -> list[str]:
    """Stan's names of an array's components, column-major: ``a.1.1``, ``a.2.1``, ..."""
    if not shape:
        return [label]
    indices = (index[::-1] for index in np.ndindex(*shape[::-1]))
    return [label + "".join(f".{i + 1}" for i in index) for index in indices]


def column_major(values: np.ndarray, lead: int) -> np.ndarray:
    """``values`` (``lead`` leading axes, then the variable's) flattened column-major."""
    rows = int(np.prod(values.shape[:lead]))
    axes = tuple(range(values.ndim - 1, lead - 1, -1))
    flat = np.transpose(values.reshape(rows, *values.shape[lead:]), (0, *axes))
    return flat.reshape(rows, -1)


def chain_paths(path: str, chains: int) -> list[str]:
    """CmdStan's file names for ``chains`` chains saved as ``path``."""
    if chains <= 1:
        return [path]
    stem, ext = os.path.splitext(path)
    return [f"{stem}_{c + 1}{ext}" for c in range(chains)]


def save_csv(path: str, fit: FitData) -> list[str]:
    """Write ``fit`` as Stan CSV, one file per chain (see the module's docstring)."""
    chains = (fit.draw_shape() or (1, 0))[0]
    paths = chain_paths(path, chains)
    stats = [k for k in STAN_COLUMNS if k in fit.sample_stats]
    generated = {**fit.posterior_predictive, **_declared_log_lik(fit)}
    names = [STAN_COLUMNS[k] for k in stats]
    for group in (fit.posterior, generated):
        for name, value in group.items():
            names += column_names(name, np.shape(value)[2:])
    for chain, chain_path in enumerate(paths):
        lines = _header(fit, chain, list(generated))
        lines.append(",".join(names))
        warmup = fit.warmup_sample_stats
        if _kept_warmup(fit) is not None:
            warmup_columns = [np.asarray(warmup[k])[chain][:, None] for k in stats]
            length = warmup_columns[0].shape[0] if warmup_columns else 0
            unknown = np.full((length, len(names) - len(stats)), np.nan)  # no warmup draws
            lines += _rows([*warmup_columns, unknown])
        lines += _adaptation_block(fit, chain)
        columns = [np.asarray(fit.sample_stats[k])[chain][:, None] for k in stats]
        for group in (fit.posterior, generated):
            columns += [column_major(np.asarray(v)[chain], 1) for v in group.values()]
        lines += _rows(columns)
        lines += _timing_block(fit.attrs, chain)
        write_text(chain_path, "\n".join(lines) + "\n")
    _remove_stale(path, chains)
    return paths


def _declared_log_lik(fit: FitData) -> dict[str, np.ndarray]:
    """The ``gen log_lik...`` values the model declares (the automatic ones are named
    after their data field)."""
    return {k: v for k, v in fit.log_likelihood.items() if k.startswith("log_lik")}


def _remove_stale(path: str, chains: int) -> None:
    """Remove chain files of an earlier, larger run saved under the same name."""
    keep = set(chain_paths(path, chains))
    stem, ext = os.path.splitext(path)
    for old in [path, *glob.glob(f"{glob.escape(stem)}_*{ext}")]:
        suffix = old[len(stem) + 1 : len(old) - len(ext)]
        if old not in keep and (old == path or suffix.isdigit()) and os.path.isfile(old):
            os.remove(old)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _header(fit: FitData, chain: int, generated: list[str]) -> list[str]:
    """CmdStan's settings comments for one chain, then FPL's section."""
    attrs = fit.attrs
    draws = (fit.draw_shape() or (1, 0))[1]
    kept_warmup = _kept_warmup(fit)
    warmup = np.shape(kept_warmup)[1] if kept_warmup is not None else attrs.get("warmup", 0)
    method = str(attrs.get("method", "sample"))
    lines = [f"# model = {_one_line(attrs.get('model', 'model'))}"]
    lines.append(f"# method = {method}")
    if method == "sample":
        metric = "dense_e" if _dense(fit) else "diag_e"
        lines += [
            "#   sample",
            f"#     num_samples = {draws}",
            f"#     num_warmup = {warmup}",
            f"#     save_warmup = {int(kept_warmup is not None)}",
            "#     thin = 1",
            "#     adapt",
            f"#       engaged = {int(bool(fit.adaptation))}",
            f"#       delta = {attrs.get('target_accept', 0.8)}",
            "#     algorithm = hmc",
            "#       hmc",
            "#         engine = nuts",
            "#           nuts",
            f"#             max_depth = {attrs.get('max_tree_depth', 10)}",
            f"#         metric = {metric}",
            "#     num_chains = 1",
        ]
    lines += [f"# id = {chain + 1}", "# random", f"#   seed = {attrs.get('seed', -1)}", "# fpl"]
    lines += [f"#   fpl[{_one_line(k)}] = {_one_line(str(v))}" for k, v in attrs.items()]
    for group in ("observed_data", "constant_data"):
        values = {k: to_json_value(v) for k, v in getattr(fit, group).items()}
        if values:
            lines.append(f"#   fpl_{group} = {json.dumps(values, separators=(',', ':'))}")
    if generated:
        lines.append(f"#   fpl_generated = {','.join(generated)}")
    for name, value in fit.adaptation.items():
        if name not in ("step_size", "inv_metric"):
            text = json.dumps(to_json_value(np.asarray(value)[chain]), separators=(",", ":"))
            lines.append(f"#   fpl_adaptation.{name} = {text}")
    return lines


def _kept_warmup(fit: FitData) -> np.ndarray | None:
    """A warmup statistic where the warmup rows are written (every sampler column of
    the draws has its warmup values), else None."""
    stats = [k for k in STAN_COLUMNS if k in fit.sample_stats]
    warmup = fit.warmup_sample_stats
    if not stats or not all(k in warmup for k in stats):
        return None
    return np.asarray(warmup[stats[0]])


def _dense(fit: FitData) -> bool:
    """Whether the saved inverse metric is dense (chains, d, d); a low-rank metric is
    saved dense, or as its diagonal where it is large (Stan's ``diag_e`` layout then)."""
    return np.ndim(fit.adaptation.get("inv_metric", np.zeros((1, 0)))) == 3


def _rows(columns: list[np.ndarray]) -> list[str]:
    """CSV rows of per-draw columns (draws, k): integers as such, reals by ``repr``."""
    if not columns:
        return []
    is_int = np.concatenate([np.full(c.shape[1], c.dtype.kind in "biu") for c in columns])
    table = np.concatenate([c.astype(np.float64) for c in columns], axis=1)
    return [
        ",".join(str(int(v)) if i else repr(v) for v, i in zip(row, is_int))
        for row in table.tolist()
    ]


def _adaptation_block(fit: FitData, chain: int) -> list[str]:
    """Stan's adaptation comments: step size and inverse metric (dense form if not
    diagonal); none where the fit has no adaptation."""
    if "step_size" not in fit.adaptation:
        return []
    step_size = float(fit.adaptation["step_size"][chain])
    lines = ["# Adaptation terminated", f"# Step size = {step_size!r}"]
    inv_metric = fit.adaptation.get("inv_metric")
    if inv_metric is None:
        return lines
    metric = np.asarray(inv_metric, dtype=np.float64)[chain]
    if metric.ndim == 1:
        return [*lines, "# Diagonal elements of inverse mass matrix:", _comment_row(metric)]
    return [*lines, "# Elements of inverse mass matrix:", *map(_comment_row, metric)]


def _comment_row(values: np.ndarray) -> str:
    return "# " + ", ".join(repr(float(v)) for v in values)


def _timing_block(attrs: dict[str, Attr], chain: int) -> list[str]:
    """Stan's timing comments: a chain's own times where known, else the run's."""
    seconds = {
        phase: attrs.get(f"{key}_chain_{chain + 1}", attrs.get(key))
        for phase, key in _PHASES.items()
    }
    known = [(phase, float(v)) for phase, v in seconds.items() if isinstance(v, (int, float))]
    if not known:
        return ["# ", "#  Elapsed Time: not recorded", "# "]
    lines = [
        f"#  {'Elapsed Time: ' if i == 0 else ' ' * 14}{value!r} seconds ({phase})"
        for i, (phase, value) in enumerate(known)
    ]
    return ["# ", *lines, "# "]


# --- reading ----------------------------------------------------------------------------


def csv_files(path: str) -> list[str]:
    """The files of a CSV fit saved as ``path``: the file itself, else ``stem_1.csv``,
    ``stem_2.csv``, ... in chain order."""
    if os.path.exists(path):
        return [path]
    stem, ext = os.path.splitext(path)
    found = {}
    for name in glob.glob(f"{glob.escape(stem)}_*{ext}"):
        suffix = name[len(stem) + 1 : len(name) - len(ext)]
        if suffix.isdigit():
            found[int(suffix)] = name
    return [found[k] for k in sorted(found)]


def load_csv(path: str) -> FitData:
    """Read Stan CSV chain files (saved by :func:`save_csv`, or CmdStan's) into a fit."""
    from fpl.dsl.diagnostics import error

    files = csv_files(path)
    if not files:
        stem, ext = os.path.splitext(path)
        raise error(
            "E0501",
            f"cannot read fit file `{path}`: no such file (nor {stem}_1{ext}, ...)",
        )
    chains = [_read_chain(name) for name in files]
    header = chains[0]["header"]
    for name, chain in zip(files, chains):
        if chain["header"] != header:
            raise bad_file(name, f"its columns differ from those of `{files[0]}`")
    fit = chains[0]["fit"]
    for key in ("draws", "warmup"):
        counts = [len(c[key]) for c in chains]
        if len(set(counts)) > 1:
            raise bad_file(path, f"its chains have different numbers of {key} ({counts})")
    generated = chains[0]["generated"]
    if not len(chains[0]["draws"]):
        raise bad_file(path, "it holds no draws")
    cube = np.stack([c["draws"] for c in chains])
    _fill(path, fit, header, cube, generated, warmup=False)
    if len(chains[0]["warmup"]):
        _fill(path, fit, header, np.stack([c["warmup"] for c in chains]), generated, warmup=True)
    adaptation = [c["adaptation"] for c in chains]
    order = ["step_size", "inv_metric", *adaptation[0]]
    for key in dict.fromkeys(k for k in order if k in adaptation[0]):
        if all(key in a for a in adaptation):
            fit.adaptation[key] = np.stack([np.asarray(a[key]) for a in adaptation])
    _chain_seconds(fit, chains)
    return fit


def _chain_seconds(fit: FitData, chains: list[dict[str, Any]]) -> None:
    """The timing blocks: per chain where the chains' times differ (CmdStan's files),
    the run's otherwise (FPL's files, whose attrs already hold them)."""
    times = [c["seconds"] for c in chains]
    for key in _PHASES.values():
        values = [t[key] for t in times if key in t]
        if len(values) != len(chains) or key in fit.attrs:
            continue
        if len(set(values)) == 1:
            fit.attrs[key] = values[0]
        else:
            fit.attrs[key] = max(values)  # parallel chains: the run took the longest
            for c, value in enumerate(values):
                fit.attrs[f"{key}_chain_{c + 1}"] = value


def _read_chain(path: str) -> dict[str, Any]:
    """One chain file: its settings, FPL section, header, warmup and draw rows,
    adaptation and timing."""
    config: dict[str, str] = {}
    fit = FitData()
    header: list[str] | None = None
    rows: list[list[str]] = []
    warmup_rows: list[list[str]] = []
    adaptation: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    generated: set[str] = set()
    matrix: list[list[float]] | None = None
    for line in read_text(path).splitlines():
        if line.startswith("#"):
            text = line[1:].strip()
            if matrix is not None and _floats(text) is not None:
                matrix.append(_floats(text) or [])
                continue
            matrix = None
            if header is None and text == "fpl":
                config["fpl"] = "section"
            _comment(path, text, config, fit, adaptation, seconds, generated, header is None)
            if text == "Adaptation terminated":
                warmup_rows, rows = rows, []
            elif text.startswith(("Diagonal elements of inverse", "Elements of inverse")):
                matrix = adaptation["inv_metric"] = []
        elif not line.strip():
            continue
        elif header is None:
            header = [name.strip() for name in line.split(",")]
        else:
            rows.append(line.split(","))
    if header is None:
        raise bad_file(path, "it has no header row of column names")
    if not warmup_rows and config.get("save_warmup") in ("1", "true"):
        count = int(config.get("num_warmup", "0"))
        warmup_rows, rows = rows[:count], rows[count:]
    if "inv_metric" in adaptation:
        metric = adaptation["inv_metric"]
        adaptation["inv_metric"] = metric[0] if config.get("metric") == "diag_e" else metric
    if "fpl" not in config:  # a CmdStan file: its settings as attributes
        fit.attrs = _cmdstan_attrs(config)
    return {
        "fit": fit,
        "header": header,
        "draws": _table(path, header, rows),
        "warmup": _table(path, header, warmup_rows),
        "adaptation": adaptation,
        "seconds": seconds,
        "generated": generated,
    }


def _comment(path, text, config, fit, adaptation, seconds, generated, before_header) -> None:
    """Read one comment line into the settings, FPL's section, adaptation or timing."""
    match = _SECONDS.search(text)
    if match:
        seconds[_PHASES[match.group(2)]] = float(match.group(1))
        return
    key, eq, value = text.partition(" = ")
    if not eq:
        return
    key, value = key.strip(), value.replace("(Default)", "").strip()
    if key == "Step size":
        adaptation["step_size"] = float(value)
    elif key in ("fpl_observed_data", "fpl_constant_data"):
        group = key.removeprefix("fpl_")
        setattr(fit, group, json_group(path, group, value, lead=0))
    elif key == "fpl_generated":
        generated.update(value.split(","))
    elif key.startswith("fpl_adaptation."):
        name = key.removeprefix("fpl_adaptation.")
        adaptation[name] = json_group(path, "adaptation", f'{{"{name}": {value}}}', lead=0)[name]
    elif key.startswith("fpl[") and key.endswith("]"):
        fit.attrs[key[4:-1]] = _attr(value)
    elif before_header:
        config[key] = value


def _cmdstan_attrs(config: dict[str, str]) -> dict[str, Attr]:
    names = {
        "model": "model",
        "seed": "seed",
        "num_warmup": "warmup",
        "num_samples": "draws",
        "max_depth": "max_tree_depth",
        "delta": "target_accept",
    }
    return {ours: _attr(config[theirs]) for theirs, ours in names.items() if theirs in config}


def _attr(text: str) -> Attr:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _floats(text: str) -> list[float] | None:
    try:
        return [float(v) for v in text.split(",")] if text else None
    except ValueError:
        return None


def _table(path: str, header: list[str], rows: list[list[str]]) -> np.ndarray:
    for number, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise bad_file(path, f"draw {number} has {len(row)} values, the header {len(header)}")
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
    except ValueError as exc:
        raise bad_file(path, f"a draw row is not numbers: {exc}") from None


def _fill(path, fit, header, cube, generated, *, warmup: bool) -> None:
    """Group the columns of ``cube`` (chains, draws, columns) into ``fit``'s variables:
    Stan's ``__`` columns are sample statistics (of the warmup where ``warmup``), the
    others params/outs, gens, or ``log_lik...`` values."""
    from_stan = {v: k for k, v in STAN_COLUMNS.items()}
    found: dict[tuple[str, str], list[tuple[tuple[int, ...], int]]] = {}
    for col, name in enumerate(header):
        if name.endswith("__"):
            group, label, index = "sample_stats", from_stan.get(name, name[:-2]), ()
        else:
            label, *parts = name.split(".")
            if not label or not all(p.isdigit() for p in parts):
                raise bad_file(path, f"cannot read the column name `{name}`")
            index = tuple(int(p) - 1 for p in parts)
            if any(i < 0 for i in index):
                raise bad_file(path, f"column `{name}` has an index below 1")
            group = "posterior_predictive" if label in generated else "posterior"
            group = "log_likelihood" if label.startswith("log_lik") else group
        if warmup and group != "sample_stats":
            continue
        found.setdefault((group, label), []).append((index, col))
    chains, draws = cube.shape[:2]
    for (group, label), entries in found.items():
        ranks = {len(index) for index, _ in entries}
        if len(ranks) != 1:
            raise bad_file(path, f"the columns of `{label}` do not agree on its number of indices")
        shape = tuple(max(index[d] for index, _ in entries) + 1 for d in range(ranks.pop()))
        indices = {index for index, _ in entries}
        if len(indices) != len(entries) or len(indices) != int(np.prod(shape)):
            raise bad_file(path, f"the columns of `{label}` do not form a complete array")
        flat = np.empty((chains, draws, int(np.prod(shape))))
        positions = [np.ravel_multi_index(index, shape) if shape else 0 for index, _ in entries]
        flat[:, :, positions] = cube[:, :, [col for _, col in entries]]
        arr = flat.reshape((chains, draws, *shape))
        if group == "sample_stats" and label in INT_STATS:
            arr = arr.astype(np.int64)
        elif group == "sample_stats" and label == "diverging":
            arr = arr != 0
        target = "warmup_sample_stats" if warmup else group
        getattr(fit, target)[label] = arr


__all__ = ["chain_paths", "column_major", "column_names", "csv_files", "load_csv", "save_csv"]
