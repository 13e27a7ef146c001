"""``python -m bench.run SPEC.yaml``: train every cell of an ablation spec and store the results.

Exit codes: 0 every cell ran (``diverged`` is a result, not an error); 1 some cell failed or timed out,
or the run was interrupted or could not store results; 2 bad input (a spec error writes nothing), or a
machine that cannot run it (missing data set, no CUDA device, unwritable results directory, no Ray cluster).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.spec import Cell, SpecError, load

EXECUTORS = ["local", "ray"]
CELL_LIMIT = 1000  # more cells than this need --yes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("spec", help="ablation spec (YAML)")
    p.add_argument("--results-dir", default="results", help="studies go to RESULTS_DIR/<name>/ (default: results)")
    p.add_argument("--workers", type=int, default=None, help="parallel worker processes (default: one per core)")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster address, e.g. HEAD:6379 (with --executor ray; default: a local Ray instance)")
    p.add_argument("--retries", type=int, default=2, help="times a cell whose worker died is retried (default: 2)")
    p.add_argument("--cell-timeout", type=float, default=None, help="seconds before a cell is stopped as 'timeout'")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--ensemble", type=int, default=8,
                   help="at most this many cells train together as one stacked ensemble: seeds of one config, "
                        "and configs that differ only in a loss of the same structure (minimax and -log D) "
                        "(MLP models, no checkpoints; 1: every cell alone; default: 8)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the cells and an estimate of the run time (from stored runs, or a quick calibration)")
    p.add_argument("--yes", action="store_true", help=f"run matrices of more than {CELL_LIMIT} cells")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def cells_table(cells: list[Cell], done: set[str]) -> Table:
    from bench.configdict import flatten

    flat = [flatten(c.config) for c in cells]
    keys = list(dict.fromkeys(k for f in flat for k in f))  # options some cells have and others lack too
    axes = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
    table = Table(title=f"{cells[0].study}: {len(cells)} cells" if cells else "no cells", title_justify="left")
    for name in ["cell_id", "seed", *axes, "stored"]:
        table.add_column(name)
    for cell, f in zip(cells, flat):
        table.add_row(cell.cell_id, str(cell.seed), *[str(f.get(a, "-")) for a in axes],
                      "yes" if cell.cell_id in done else "")
    return table


def fail(message: str) -> int:
    """Bad input: one line on stderr, exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def spec_root(spec_file: str, spec) -> Path | None:
    """The spec's ``data_root``, relative to the spec file; None without one."""
    return (Path(spec_file).parent / spec.data_root).resolve() if spec.data_root else None


def worker_env(spec_file: str, spec) -> dict[str, str]:
    """What the run's worker processes add to their environment: the spec's ``data_root`` as ``$BENCH_DATA``,
    unless that is already set (it wins). This process's own environment is never written."""
    from bench.data.images import DATA_ENV

    root = spec_root(spec_file, spec)
    return {DATA_ENV: str(root)} if root and not os.environ.get(DATA_ENV) else {}


def unavailable(args: argparse.Namespace, cells: list[Cell]) -> str | None:
    """Why this machine cannot run the cells (a missing data set, no CUDA device), or None."""
    from bench.configdict import canonical_json
    from bench.data import DataNotFound, check_available

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "--device cuda: no CUDA device is available here; use --device auto or cpu"
    try:
        for block in {canonical_json(c.config["dataset"]): c.config["dataset"] for c in cells}.values():
            check_available(block)
    except DataNotFound as e:
        return str(e)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        if args.workers is not None and args.workers < 1:
            raise SpecError("--workers", "must be >= 1")
        if args.cell_timeout is not None and args.cell_timeout <= 0:
            raise SpecError("--cell-timeout", "must be > 0")
        if args.retries < 0:
            raise SpecError("--retries", "must be >= 0")
        if args.ensemble < 1:
            raise SpecError("--ensemble", "must be >= 1")
        if args.ray_address is not None and args.executor != "ray":
            raise SpecError("--ray-address", "needs --executor ray")
        if args.executor == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                raise SpecError("--executor", "ray is not installed (pip install 'ganbench[ray]')") from None
        spec, cells = load(args.spec)
        if spec.search is not None:
            raise SpecError("search", "a search spec: run it with python -m bench.tune", args.spec)
        if len(cells) > CELL_LIMIT and not args.yes:
            raise SpecError("", f"{len(cells)} cells (more than {CELL_LIMIT}); pass --yes to run them", args.spec)
    except SpecError as e:
        return fail(str(e))

    study_dir = Path(args.results_dir) / spec.name
    from bench.data.images import spec_data_root

    with spec_data_root(spec_root(args.spec, spec)):  # for the checks and calibration in this process
        if args.dry_run:
            return _dry_run(args, cells, study_dir, console)
        return _run(args, spec, cells, study_dir, console)


def _dry_run(args, cells, study_dir: Path, console: Console) -> int:
    """List the cells, and estimate the run time of those not stored yet; writes nothing."""
    from bench import store
    from bench.estimate import estimate

    done = store.done_cells(study_dir)
    console.print(cells_table(cells, done))
    print(estimate([c for c in cells if c.cell_id not in done], Path(args.results_dir), args.workers, args.device))
    return 0


def _run(args, spec, cells, study_dir: Path, console: Console) -> int:
    """Check that this machine can run the cells, then run them under the study's lock."""
    from bench import store

    problem = unavailable(args, cells)
    if problem:
        return fail(problem)

    def waiting(holder: str) -> None:
        print(f"{study_dir} is being run by {holder}; waiting for it to finish (Ctrl-C to stop)", file=sys.stderr)

    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(study_dir, os.W_OK):
            raise PermissionError(f"{study_dir}: results directory is not writable")
        with store.study_lock(study_dir, on_wait=waiting):  # one run of a study at a time
            return _run_locked(args, spec, cells, study_dir, console)
    except OSError as e:
        return fail(f"{args.results_dir}: cannot write results ({e})")
    except KeyboardInterrupt:
        print("interrupted; finished cells are stored, run again to resume", file=sys.stderr)
        return 1


def _run_locked(args, spec, cells, study_dir: Path, console: Console) -> int:
    """The run proper, while this process holds the study's lock."""
    from bench import store
    from bench.scheduler import ExecutorError, run_local, run_ray

    store.remove_stale_temp_files(study_dir)
    (study_dir / "spec.yaml").write_text(Path(args.spec).read_text())
    for problem in store.scan(study_dir)[1]:
        print(f"warning: {problem}; that cell will be trained again", file=sys.stderr)
    options = dict(workers=args.workers, cell_timeout=args.cell_timeout, device=args.device,
                   progress=not args.quiet, retries=args.retries,
                   ensemble=1 if spec.wall_clock else args.ensemble,  # wall_clock: each cell's time is its own
                   env=worker_env(args.spec, spec))
    try:
        if args.executor == "ray":
            report = run_ray(cells, study_dir, address=args.ray_address, **options)
        else:
            report = run_local(cells, study_dir, **options)
    except ExecutorError as e:
        return fail(str(e))
    if report.store_error:
        print(f"error: {report.store_error}; everything stored before is intact ({len(report.ran)} cells of this "
              "run), run again to resume once results can be written", file=sys.stderr)
        return 1
    try:
        tables = store.write_merged(study_dir)
    except OSError as e:
        print(f"error: cannot write the merged tables of {study_dir} ({e}); the cell files are intact", file=sys.stderr)
        return 1
    from bench.summary import print_summary

    runs = tables["runs"]
    runs = runs[runs["cell_id"].isin({c.cell_id for c in cells})]
    print_summary(runs, title=f"{spec.name} ({study_dir})", console=console, compare=spec.compare)
    from bench.published import published_table

    beside = published_table(runs)  # configs that follow a published protocol: our rows beside the paper's
    if beside:
        console.print(beside, markup=False, highlight=False)
    if report.skipped:
        console.print(f"resumed: {len(report.skipped)} cells already stored were skipped")
    if report.interrupted:
        print(f"interrupted: {len(report.ran)} finished cells are stored; run again to resume", file=sys.stderr)
        return 1
    bad = [cid for cid, s in report.statuses.items() if s in ("failed", "timeout")]
    if bad:
        print(f"{len(bad)} cells failed or timed out; see the 'error' column of {study_dir / 'runs.parquet'}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
