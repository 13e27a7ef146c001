"""The scheduling loop: run cells, store each result as it arrives, skip what is already stored.

``run`` owns the fault policy and drives an ``Executor`` (``bench.executors``): a process pool (``run_local``),
Ray (``run_ray``), or one process (``SerialExecutor``, for debugging). Only the driver writes results, one
atomic file per cell, so Ctrl-C, SIGTERM or SIGKILL of the driver loses nothing that finished. An exception
inside a cell becomes a ``failed`` row with its traceback; a NaN/inf becomes ``diverged``; a cell past its
timeout becomes ``timeout``; a worker that dies (killed, out of memory, node lost) is retried ``retries``
times - from the cell's last checkpoint - then recorded ``failed``; the rest of the matrix goes on. If
results can no longer be written (disk full), the run stops: ``RunReport.store_error``.
"""

from __future__ import annotations

import os
import signal
import traceback
from collections import Counter, deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import store
from bench.ensemble import stack_key
from bench.spec import Cell
from bench.train import Hooks, RunResult


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


def ensembles(cells: list[Cell], workers: int, max_members: int) -> list[list[Cell]]:
    """Cells grouped to train as stacked ensembles (``bench.train.train_ensemble``): seeds of one config,
    and configs that differ only in a loss of the same structure (``bench.ensemble.stack_key``).

    A group holds at most ``max_members`` cells whose generator and critic architectures have a stacked
    form and that take no checkpoints (a checkpoint belongs to one cell, so such cells train alone); its
    cells are in config order, then seed. The costliest group is halved while there are fewer tasks than
    ``workers`` or it holds more than a worker's share of the matrix's work, so grouping never leaves a
    worker idle while one stack trains alone (a cell's result does not depend on its stack: issue 18's
    bitwise tests in tests/test_train.py)."""
    from bench.ensemble import stackable
    from bench.models import CRITICS, GENERATORS

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
    share = sum(map(_work, groups)) / max(1, workers)  # of the whole matrix's work, per worker
    while groups:
        largest = max(groups, key=_work)
        if len(largest) == 1 or (len(groups) >= workers and _work(largest) <= share):
            break
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
        return [run_cell(cell, device, path) for cell, path in zip(cells, checkpoints, strict=True)]


def run_cell(cell: Cell, device: str, checkpoint: Path | None, on_eval=None) -> RunResult:
    """Train one cell in this process; any exception becomes a ``failed`` result with its traceback.
    ``on_eval``: see ``bench.train.Hooks`` (bench.tune reports to Optuna's pruner there)."""
    from bench.train import train

    started = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        hooks = Hooks(on_eval=on_eval, checkpoint_path=checkpoint if cell.config["train"]["checkpoint_every"] else None)
        return train(cell.config, cell.seed, hooks, device=device)
    except Exception:
        return RunResult("failed", 0, started, 0.0, 0.0, error=traceback.format_exc())


@dataclass
class Fault:
    """A group that came back without results. ``kind`` says what ``run`` does with it:

    - ``timeout``: past its timeout (the executor stopped it): an ensemble is split, a cell is ``timeout``;
    - ``died``: its worker died: an ensemble is split, a cell runs again up to ``retries`` times, then ``failed``;
    - ``lost``: the engine gave up on it (after retries of its own): an ensemble is split, a cell ``failed``;
    - ``error``: the executor itself failed on it (e.g. an unpicklable result): every cell ``failed``.
    """

    kind: Literal["timeout", "died", "lost", "error"]
    error: str = ""  # what the engine said


Outcome = list[RunResult] | Fault  # a group's results (one per cell, in order), or why there are none


class Executor(Protocol):
    """Where groups of cells (``run_group``) train. ``run`` calls ``start`` once, then ``submit`` at most
    as many groups at once as ``start`` said, ``wait`` while any are out, and ``close`` at the end."""

    label: str  # beside the study's name on the progress bar ("" for none)

    def start(self, n_cells: int) -> int:
        """Get ready to run ``n_cells`` cells (raise ``ExecutorError`` if it cannot); return how many groups
        run at once (recorded as ``workers`` in each row)."""

    def submit(self, group: list[Cell], checkpoints: list[Path | None], timeout: float | None) -> Hashable:
        """Start a group; a handle for ``wait``. Past ``timeout`` seconds (None: none) it is stopped and
        comes back as ``Fault("timeout")``, where the engine can stop it."""

    def wait(self, handles: list[Hashable]) -> list[tuple[Hashable, Outcome]]:
        """Block until at least one of ``handles`` is done (or briefly, then []); the done ones."""

    def close(self, cancel: bool) -> None:
        """Release the engine; ``cancel``: stop what is still running (the run was interrupted). Called even
        when ``start`` failed."""


def _lost(status: str, error: str) -> RunResult:
    return RunResult(status, 0, datetime.now(UTC).isoformat(timespec="seconds"), 0.0, 0.0, error=error)


class _Terminate(Exception):
    pass


def _raise_terminate(signum, frame):
    raise _Terminate()


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


def run(
    executor: Executor,
    cells: list[Cell],
    study_dir: Path,
    *,
    cell_timeout: float | None = None,
    progress: bool = True,
    retries: int = 2,
    ensemble: int = ENSEMBLE,
) -> RunReport:
    """Run every cell of ``cells`` not yet stored under ``study_dir`` on ``executor``; store each as it
    finishes. Cells train in groups (``ensembles``, up to ``ensemble`` members); a group's timeout is
    ``cell_timeout`` per member. Ctrl-C or SIGTERM stops the run (``RunReport.interrupted``): run it again to
    resume. ``ExecutorError`` if the executor cannot start."""
    study_dir = Path(study_dir)
    report = RunReport()
    todo = _split(cells, study_dir, report)
    if not todo:
        return report
    cancel = True
    try:
        slots = executor.start(len(todo))
        previous = signal.signal(signal.SIGTERM, _raise_terminate)
        try:
            _Loop(executor, study_dir, report, slots, cell_timeout, retries).run(todo, ensemble, progress)
            cancel = False
        except (KeyboardInterrupt, _Terminate):
            report.interrupted = True
        except _StoreFailed as err:
            report.store_error = str(err)
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        executor.close(cancel=cancel)
    return report


class _Loop:
    """One run's queue of groups, the groups out on the executor, and what becomes of each outcome."""

    def __init__(self, executor: Executor, study_dir: Path, report: RunReport, slots: int,
                 cell_timeout: float | None, retries: int):
        self.executor, self.study_dir, self.report, self.slots = executor, study_dir, report, slots
        self.cell_timeout, self.retries = cell_timeout, retries
        self.prov = {**store.provenance(), "workers": slots}  # how many groups shared the machine(s)
        self.queue: deque[list[Cell]] = deque()
        self.deaths: Counter[str] = Counter()

    def run(self, todo: list[Cell], ensemble: int, progress: bool) -> None:
        self.queue.extend(ensembles(todo, self.slots, ensemble))
        pending: dict[Hashable, list[Cell]] = {}
        label = f" ({self.executor.label})" if self.executor.label else ""
        with _progress(progress) as bar:
            task = bar.add_task(f"{todo[0].study}{label}", total=len(todo), last="")
            while self.queue or pending:
                while self.queue and len(pending) < self.slots:
                    group = self.queue.popleft()
                    pending[self._submit(group)] = group
                for handle, outcome in self.executor.wait(list(pending)):
                    for cell, result in self._settle(pending.pop(handle), outcome):
                        _record(self.study_dir, cell, result, self.prov, self.report)
                        bar.update(task, advance=1, last=f"{cell.cell_id} {result.status}")

    def _submit(self, group: list[Cell]) -> Hashable:
        self.report.groups.append([c.cell_id for c in group])
        checkpoints = [store.checkpoint_path(self.study_dir, c.cell_id) for c in group]
        return self.executor.submit(group, checkpoints, self.cell_timeout * len(group) if self.cell_timeout else None)

    def _settle(self, group: list[Cell], outcome: Outcome) -> list[tuple[Cell, RunResult]]:
        """The results to store of a group that came back; none where its cells go back in the queue."""
        if not isinstance(outcome, Fault):
            return list(zip(group, outcome, strict=True))
        if outcome.kind == "error":
            failed = _lost("failed", outcome.error)
            return [(cell, failed) for cell in group]
        if len(group) > 1:  # an ensemble: find the cell at fault, each on its own
            self.queue.extend([cell] for cell in group)
            return []
        (cell,) = group
        if outcome.kind == "timeout":
            return [(cell, _lost("timeout", f"cell exceeded --cell-timeout {self.cell_timeout} s"))]
        if outcome.kind == "lost":
            return [(cell, _lost("failed", outcome.error))]
        self.deaths[cell.cell_id] += 1
        if self.deaths[cell.cell_id] <= self.retries:  # resumes from its last checkpoint
            self.queue.append(group)
            return []
        return [(cell, _lost("failed", f"worker process died {self.deaths[cell.cell_id]} times: {outcome.error}"))]


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
    env: dict[str, str] | None = None,
) -> RunReport:
    """``run`` on a process pool (``bench.executors.LocalExecutor``) of ``workers`` processes (default: one
    per core, at most one per cell). A group that times out or whose worker dies is split and its cells run
    again one by one, each with its own timeout and retries. ``env``: variables added to each worker's
    environment (not this process's)."""
    from bench.executors import LocalExecutor

    return run(LocalExecutor(workers=workers, device=device, env=env), cells, study_dir,
               cell_timeout=cell_timeout, progress=progress, retries=retries, ensemble=ensemble)


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
    env: dict[str, str] | None = None,
) -> RunReport:
    """``run`` with each group a Ray task (``bench.executors.RayExecutor``), on a local Ray instance
    (``address`` None) or a running cluster. Ray itself retries a task whose worker died ``retries`` times;
    with a shared file system the retry resumes from the cell's checkpoint. ``env``: variables added to
    each task's environment (Ray's ``runtime_env``), not this process's."""
    from bench.executors import RayExecutor

    executor = RayExecutor(address=address, workers=workers, device=device, retries=retries, env=env)
    # workers, maybe on other machines, get absolute checkpoint paths
    return run(executor, cells, Path(study_dir).resolve(), cell_timeout=cell_timeout, progress=progress,
               retries=retries, ensemble=ensemble)
