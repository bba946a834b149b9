"""Copy a posteriordb posterior's data and reference summary into tests/posteriordb.

    python benchmarks/posteriordb_import.py NAME [NAME ...]      # e.g. arma-arma11
    python benchmarks/posteriordb_import.py --check NAME ...      # compare, write nothing

For each posterior ``<model>-<data>`` it writes ``tests/posteriordb/data/<name>/``:

- ``data.json``: posteriordb's data (``data/data/<data>.json.zip``) as CmdStan JSON, keys
  sorted, on one line;
- ``reference.json``: for every scalar component of the reference draws
  (``reference_posteriors/draws/draws/<name>.json.zip``: a list of chains, each a map from
  Stan's component name ``theta[1]``, ``Sigma[1,2]`` to its draws) the mean and the sample
  standard deviation (``ddof=1``) over all chains' draws pooled (and, for a component
  whose draws are all positive, ``log_mean`` and ``log_sd``: the same of their logs, the
  scale a positive param is sampled on, where a heavy tail's moments still exist), with
  the posterior, model and data names and the number of draws.

posteriordb is read from a local bare git mirror (``--mirror``, default
``/work/.mirror/stan-dev+posteriordb/repo``; any clone works) with ``git show HEAD:path``,
so nothing is fetched. The FPL translation itself is written by hand: read
``models/stan/<model>.stan`` and port it line by line.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "tests" / "posteriordb" / "data"
MIRROR = Path("/work/.mirror/stan-dev+posteriordb/repo")
DATABASE = "posterior_database"


def git_show(mirror: Path, path: str) -> bytes:
    """The bytes of ``path`` at the mirror's HEAD (raises ``FileNotFoundError`` if absent)."""
    done = subprocess.run(
        ["git", "-C", str(mirror), "show", f"HEAD:{DATABASE}/{path}"],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise FileNotFoundError(f"{path} is not in the posteriordb mirror at {mirror}")
    return done.stdout


def unzip_json(blob: bytes):
    """The JSON document inside a one-file zip archive (posteriordb's ``.json.zip``)."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        (member,) = archive.namelist()
        return json.loads(archive.read(member))


def list_tree(mirror: Path, folder: str) -> list[str]:
    """File names (without folder) under ``folder`` at the mirror's HEAD."""
    done = subprocess.run(
        ["git", "-C", str(mirror), "ls-tree", "--name-only", "HEAD", f"{DATABASE}/{folder}/"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.rsplit("/", 1)[-1] for line in done.stdout.splitlines()]


def posterior_info(mirror: Path, name: str) -> dict:
    """posteriordb's ``posteriors/<name>.json`` (model_name, data_name, dimensions, ...)."""
    return json.loads(git_show(mirror, f"posteriors/{name}.json"))


def reference_summary(name: str, info: dict, chains: list[dict]) -> dict:
    """Mean and sd (ddof 1) of every component over the pooled reference draws, and of
    their logs where every draw is positive."""
    components = {}
    for component in chains[0]:
        draws = np.concatenate([np.asarray(chain[component], dtype=float) for chain in chains])
        row = {"mean": float(draws.mean()), "sd": float(draws.std(ddof=1))}
        if np.all(draws > 0):
            logs = np.log(draws)
            row.update(log_mean=float(logs.mean()), log_sd=float(logs.std(ddof=1)))
        components[component] = row
    ndraws = sum(len(next(iter(chain.values()))) for chain in chains)
    return {
        "posterior": name,
        "model": info["model_name"],
        "data": info["data_name"],
        "ndraws": ndraws,
        "components": components,
    }


def import_posterior(mirror: Path, name: str) -> tuple[str, str]:
    """The ``data.json`` and ``reference.json`` texts of posterior ``name``."""
    info = posterior_info(mirror, name)
    data = unzip_json(git_show(mirror, f"data/data/{info['data_name']}.json.zip"))
    chains = unzip_json(git_show(mirror, f"reference_posteriors/draws/draws/{name}.json.zip"))
    data_text = json.dumps(data, sort_keys=True)
    reference_text = json.dumps(reference_summary(name, info, chains), indent=1)
    return data_text, reference_text


def equal(a, b) -> bool:
    """Same JSON document, floats equal to 1e-12 relative (summation order differs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-12, atol=0.0))
    return a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="posteriordb posterior names")
    parser.add_argument("--mirror", type=Path, default=MIRROR)
    parser.add_argument("--check", action="store_true", help="compare with the files present")
    args = parser.parse_args(argv)
    status = 0
    for name in args.names:
        data_text, reference_text = import_posterior(args.mirror, name)
        folder = TARGET / name
        if args.check:
            for file, text in (("data.json", data_text), ("reference.json", reference_text)):
                same = equal(json.loads((folder / file).read_text()), json.loads(text))
                status |= not same
                print(f"{name}/{file}: {'same' if same else 'DIFFERS'}")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data.json").write_text(data_text)
        (folder / "reference.json").write_text(reference_text)
        print(f"wrote {folder.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
