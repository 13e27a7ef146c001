"""Executors: run cells, store each result as it arrives, skip what is already stored.

``run_local`` runs cells in worker processes (pebble's process pool: a cell past ``cell_timeout`` has its
worker killed and replaced); ``run_ray`` runs each cell as a Ray task, on a local Ray instance or a cluster.
Either way only the driver writes results, one atomic file per cell, so Ctrl-C, SIGTERM or SIGKILL of the
driver loses nothing that finished. An exception inside a cell becomes a ``failed`` row with its traceback;
a NaN/inf becomes ``diverged``; a worker that dies (killed, out of memory, node lost) is retried
``retries`` times - from the cell's last checkpoint - then recorded ``failed``; the rest of the matrix
goes on. If results can no longer be written (disk full), the run stops: ``RunReport.store_error``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pebble import ProcessExpired, ProcessPool
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import store
from bench.spec import Cell
from bench.train import Hooks, RunResult, stack_key


@dataclass
class RunReport:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # cell_id -> status of this run's cells
    groups: list[list[str]] = field(default_factory=list)  # cell ids of each group as scheduled (retries too)
    interrupted: bool = False
    store_error: str | None = None  # results could not be written (e.g. disk full): the run stopped


class ExecutorError(Exception):
    """The executor cannot start (Ray cluster unreachable, no GPU in it): nothing ran."""


class _StoreFailed(Exception):
    pass


ENSEMBLE = 8  # at most this many cells train as one stacked ensemble, unless told otherwise


def default_workers(n_cells: int) -> int:
    return max(1, min(n_cells, os.cpu_count() or 1))


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _init_worker(threads: int) -> None:
    import torch

    import bench.train  # noqa: F401  (imported once per worker, not on a cell's clock)

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what Ctrl-C means
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose driver was killed stops at once, instead of training on unseen and writing
    checkpoints beside the next run of the study."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def ensembles(cells: list[Cell], workers: int, max_members: int) -> list[list[Cell]]:
    """Cells grouped to train as stacked ensembles (``bench.train.train_ensemble``): seeds of one config,
    and configs that differ only in a loss of the same structure (``bench.train.stack_key``).

    A group holds at most ``max_members`` cells whose generator and critic architectures have a stacked
    form and that take no checkpoints (a checkpoint belongs to one cell, so such cells train alone); its
    cells are in config order, then seed. The largest groups are halved until there are at least
    ``workers`` tasks, so grouping never leaves a worker idle that would otherwise have had a cell."""
    from bench.models import CRITICS, GENERATORS, stackable

    def groupable(cell: Cell) -> bool:
        c = cell.config
        return (max_members > 1 and not c["train"]["checkpoint_every"]
                and stackable(GENERATORS.get(c["generator"]["arch"])) and stackable(CRITICS.get(c["critic"]["arch"])))

    by_key: dict[str, list[Cell]] = {}
    groups: list[list[Cell]] = []
    for cell in cells:
        if groupable(cell):
            by_key.setdefault(stack_key(cell.config), []).append(cell)
        else:
            groups.append([cell])
    order = {config_id: i for i, config_id in enumerate(dict.fromkeys(c.config_id for c in cells))}
    for same in by_key.values():
        same = sorted(same, key=lambda c: (order[c.config_id], c.seed))  # each loss's members side by side
        groups += [same[i : i + max_members] for i in range(0, len(same), max_members)]
    while len(groups) < workers and max(map(len, groups)) > 1:
        largest = max(groups, key=len)
        groups.remove(largest)
        groups += [largest[: len(largest) // 2], largest[len(largest) // 2 :]]
    return sorted(groups, key=_work, reverse=True)  # longest first: no long task left to start last


def _work(group: list[Cell]) -> float:
    """A rough cost of a group, to order the queue longest first: generator steps x members x the cost of
    one step in critic steps. Relative costs measured on the quickstart's stacked MLPs: a generator step
    1.5 critic steps, a gradient penalty 0.6 of one more."""
    train, loss = group[0].config["train"], group[0].config["loss"]
    critic_step = 1.0 + (0.6 if loss.get("gp_lambda") else 0.0)
    return len(group) * train["generator_iters"] * (train["n_critic"] * critic_step + 1.5)


def run_group(cells: list[Cell], device: str, checkpoints: list[Path | None]) -> list[RunResult]:
    """Train a group from ``ensembles``: one cell alone, several as one ensemble. If the ensemble raises,
    each cell is trained again on its own, so the failure is recorded for the cell(s) that cause it."""
    if len(cells) == 1:
        return [run_cell(cells[0], device, checkpoints[0])]
    from bench.train import train_ensemble

    try:
        return train_ensemble([c.config for c in cells], [c.seed for c in cells], device=device)
    except Exception:
        return [run_cell(cell, device, path) for cell, path in zip(cells, checkpoints)]


def run_cell(cell: Cell, device: str, checkpoint: Path | None, on_eval=None) -> RunResult:
    """Train one cell in this process; any exception becomes a ``failed`` result with its traceback.
    ``on_eval``: see ``bench.train.Hooks`` (bench.tune reports to Optuna's pruner there)."""
    from bench.train import train

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        hooks = Hooks(on_eval=on_eval, checkpoint_path=checkpoint if cell.config["train"]["checkpoint_every"] else None)
        return train(cell.config, cell.seed, hooks, device=device)
    except Exception:
        return RunResult("failed", 0, started, 0.0, 0.0, error=traceback.format_exc())


def _lost(status: str, error: str) -> RunResult:
    return RunResult(status, 0, datetime.now(timezone.utc).isoformat(timespec="seconds"), 0.0, 0.0, error=error)


class _Terminate(Exception):
    pass


def _split(cells: list[Cell], study_dir: Path, report: RunReport) -> list[Cell]:
    """The cells still to run; the stored ones go to ``report.skipped``."""
    done = store.done_cells(study_dir)
    report.skipped = [c.cell_id for c in cells if c.cell_id in done]
    return [c for c in cells if c.cell_id not in done]


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[last]}"), disable=not enabled)


def _record(study_dir: Path, cell: Cell, result: RunResult, prov: dict, report: RunReport) -> None:
    try:
        store.write_cell(study_dir, cell, result, prov)
    except OSError as err:
        raise _StoreFailed(f"cannot store cell {cell.cell_id} in {study_dir}: {err}") from None
    report.ran.append(cell.cell_id)
    report.statuses[cell.cell_id] = result.status


def run_local(
    cells: list[Cell],
    study_dir: Path,
    *,
    workers: int | None = None,
    cell_timeout: float | None = None,
    device: str = "cpu",
    progress: bool = True,
    retries: int = 2,
    ensemble: int = ENSEMBLE,
) -> RunReport:
    """Run every cell of ``cells`` not yet stored under ``study_dir``; store each as it finishes.

    Seeds of one config (and configs that differ only in a loss of one structure) train together as
    ensembles of up to ``ensemble`` members (``ensembles``); a group's timeout is ``cell_timeout`` per
    member. A group that times out or whose worker dies is split and its cells run again one by one, each
    with its own timeout and retries."""
    study_dir = Path(study_dir)
    report = RunReport()
    todo = _split(cells, study_dir, report)
    if not todo:
        return report
    device = resolve_device(device)
    workers = workers or default_workers(len(todo))
    # torch threads per worker: OMP_NUM_THREADS where set (a shared machine), else the cores split evenly
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 1) // workers)
    prov = store.provenance()

    previous = signal.signal(signal.SIGTERM, _raise_terminate)
    bar = _progress(progress)
    pool = ProcessPool(max_workers=workers, initializer=_init_worker, initargs=(threads,),
                       context=multiprocessing.get_context("spawn"))

    def schedule(group: list[Cell]):
        report.groups.append([c.cell_id for c in group])
        paths = [store.checkpoint_path(study_dir, c.cell_id) for c in group]
        return pool.schedule(run_group, args=(group, device, paths),
                             timeout=cell_timeout * len(group) if cell_timeout else None)

    deaths = dict.fromkeys((c.cell_id for c in todo), 0)
    try:
        with bar:
            task = bar.add_task(f"{todo[0].study}", total=len(todo), last="")
            pending = {schedule(g): g for g in ensembles(todo, workers, ensemble)}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    group = pending.pop(future)
                    try:
                        results = future.result()
                    except (FutureTimeout, ProcessExpired) as err:
                        if len(group) > 1:  # an ensemble: find the cell at fault, each on its own
                            for cell in group:
                                pending[schedule([cell])] = [cell]
                            continue
                        (cell,) = group
                        if isinstance(err, FutureTimeout):
                            results = [_lost("timeout", f"cell exceeded --cell-timeout {cell_timeout} s")]
                        else:
                            deaths[cell.cell_id] += 1
                            if deaths[cell.cell_id] <= retries:  # resumes from its last checkpoint
                                pending[schedule(group)] = group
                                continue
                            results = [_lost("failed", f"worker process died {deaths[cell.cell_id]} times: {err}")]
                    except Exception:  # pebble-level failures (e.g. unpicklable result)
                        results = [_lost("failed", traceback.format_exc())] * len(group)
                    for cell, result in zip(group, results, strict=True):
                        _record(study_dir, cell, result, prov, report)
                        bar.update(task, advance=1, last=f"{cell.cell_id} {result.status}")
        pool.close()
    except (KeyboardInterrupt, _Terminate):
        report.interrupted = True
        pool.stop()
    except _StoreFailed as err:
        report.store_error = str(err)
        pool.stop()
    finally:
        pool.join()
        signal.signal(signal.SIGTERM, previous)
    return report


def _raise_terminate(signum, frame):
    raise _Terminate()


RAY_CPUS_PER_CELL = 1


def _ray_group(cells: list[Cell], device: str, checkpoints: list[Path]) -> list[RunResult]:
    """The body of one Ray task: as many torch threads as the task has CPUs."""
    import torch

    torch.set_num_threads(RAY_CPUS_PER_CELL)
    return run_group(cells, device, checkpoints)


def _check_reachable(address: str) -> None:
    """Fail fast on a wrong address (Ray itself keeps retrying an unreachable one for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as err:
        reason = err.strerror or err
        raise ExecutorError(f"--ray-address {address}: no Ray cluster reachable there ({reason})") from None


def run_ray(
    cells: list[Cell],
    study_dir: Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    cell_timeout: float | None = None,
    device: str = "auto",
    progress: bool = True,
    retries: int = 2,
    ensemble: int = ENSEMBLE,
) -> RunReport:
    """Run every cell not yet stored as a Ray task; the driver (this process) stores each result.

    ``address``: a running cluster (``ray start --head`` prints it); None starts a local Ray instance for
    this run. Each task declares 1 CPU, plus 1 GPU when cells run on ``cuda`` (``device="auto"``: cuda if
    the cluster has GPUs). At most ``workers`` cells are in flight (default: as many as the cluster's
    CPUs, or GPUs, hold), so a cell's ``cell_timeout`` counts from about when it starts; a cell past it
    is cancelled (its worker killed) and stored as ``timeout``. A worker that dies is retried ``retries``
    times by Ray; with a shared file system the retry resumes from the cell's checkpoint. Seeds of one
    config form ensembles as in ``run_local``; an ensemble that fails or times out is split into its cells.
    """
    import ray
    import ray.exceptions

    study_dir = Path(study_dir).resolve()  # workers, maybe on other machines, get absolute checkpoint paths
    report = RunReport()
    todo = _split(cells, study_dir, report)
    if not todo:
        return report
    if address:
        _check_reachable(address)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ExecutorError(f"--ray-address {address}: cannot connect to Ray ({err})") from None
    previous = signal.signal(signal.SIGTERM, _raise_terminate)
    pending: dict = {}  # ObjectRef -> (cell, deadline)
    try:
        resources = ray.cluster_resources()
        if device == "auto":
            device = "cuda" if resources.get("GPU", 0) >= 1 else "cpu"
        gpus = 1 if device == "cuda" else 0
        slot = "GPU" if gpus else "CPU"
        if resources.get(slot, 0) < 1:
            raise ExecutorError(f"--device {device}: the Ray cluster has no {slot} ({resources})")
        slots = workers or int(resources[slot])
        remote_group = ray.remote(_ray_group)
        prov = store.provenance()
        queue = deque(ensembles(todo, slots, ensemble))
        with _progress(progress) as bar:
            task = bar.add_task(f"{todo[0].study} (ray)", total=len(todo), last="")
            while queue or pending:
                while queue and len(pending) < slots:
                    group = queue.popleft()
                    report.groups.append([c.cell_id for c in group])
                    ref = remote_group.options(  # named in Ray task listings and process titles
                        name=f"bench-cell-{'+'.join(c.cell_id for c in group)}", num_cpus=RAY_CPUS_PER_CELL,
                        num_gpus=gpus, max_retries=retries, retry_exceptions=False,
                    ).remote(group, device, [store.checkpoint_path(study_dir, c.cell_id) for c in group])
                    deadline = time.monotonic() + cell_timeout * len(group) if cell_timeout else None
                    pending[ref] = (group, deadline)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                finished = []
                for ref in ready:
                    group, _ = pending.pop(ref)
                    try:
                        finished += zip(group, ray.get(ref), strict=True)
                    except ray.exceptions.RayError as err:  # worker died past its retries, node lost, ...
                        if len(group) > 1:
                            queue.extend([cell] for cell in group)
                        else:
                            finished.append((group[0], _lost("failed", f"{type(err).__name__}: {err}")))
                now = time.monotonic()
                for ref, (group, deadline) in list(pending.items()):
                    if deadline is not None and now > deadline:
                        ray.cancel(ref, force=True)
                        del pending[ref]
                        if len(group) > 1:
                            queue.extend([cell] for cell in group)
                        else:
                            finished.append((group[0], _lost("timeout", f"cell exceeded --cell-timeout {cell_timeout} s")))
                for cell, result in finished:
                    _record(study_dir, cell, result, prov, report)
                    bar.update(task, advance=1, last=f"{cell.cell_id} {result.status}")
    except (KeyboardInterrupt, _Terminate):
        report.interrupted = True
    except _StoreFailed as err:
        report.store_error = str(err)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        signal.signal(signal.SIGTERM, previous)
        if started_here:
            ray.shutdown()
    return report
