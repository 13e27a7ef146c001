"""Executors: where ``bench.scheduler.run`` trains groups of cells. Each is a small class of the
``bench.scheduler.Executor`` protocol (start / submit / wait / close); the loop in ``bench.scheduler`` owns
the fault policy (timeouts, retries, failure rows, storing, interrupts), so an executor only runs groups
and says how each came back.

- ``LocalExecutor``: a pool of worker processes on this machine (``--executor local``);
- ``RayExecutor``: each group a Ray task, on a local Ray instance or a cluster (``--executor ray``);
- ``SerialExecutor``: one group after another in this process, for debugging and tests.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Hashable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from pebble import ProcessExpired, ProcessPool

from bench.scheduler import ExecutorError, Fault, Outcome, default_workers, resolve_device, run_group
from bench.spec import Cell
from bench.train import RunResult


def _init_worker(threads: int, env: dict[str, str]) -> None:
    import torch

    os.environ.update(env)  # this worker process's own environment (the run's data root)
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


class LocalExecutor:
    """Groups in ``workers`` spawned worker processes (pebble's process pool; default: one per core, at most
    one per cell). A group past its timeout has its worker killed and replaced. Each worker has ``env``
    added to its environment and torch threads of an equal share of the cores (``$OMP_NUM_THREADS`` if set)."""

    label = ""

    def __init__(self, workers: int | None = None, device: str = "cpu", env: dict[str, str] | None = None):
        self.workers, self.device, self.env = workers, device, env or {}
        self.pool: ProcessPool | None = None

    def start(self, n_cells: int) -> int:
        self.device = resolve_device(self.device)
        workers = self.workers or default_workers(n_cells)
        # torch threads of a worker's own work (a cell trains with its train.threads): the cores split evenly
        threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 1) // workers)
        self.pool = ProcessPool(max_workers=workers, initializer=_init_worker, initargs=(threads, self.env),
                                context=multiprocessing.get_context("spawn"))
        return workers

    def submit(self, group: list[Cell], checkpoints: list[Path | None], timeout: float | None) -> Future:
        return self.pool.schedule(run_group, args=(group, self.device, checkpoints), timeout=timeout)

    def wait(self, handles: list[Future]) -> list[tuple[Future, Outcome]]:
        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        return [(future, _outcome(future)) for future in done]

    def close(self, cancel: bool) -> None:
        if self.pool is not None:
            if cancel:
                self.pool.stop()
            else:
                self.pool.close()
            self.pool.join()


def _outcome(future: Future) -> Outcome:
    try:
        return future.result()
    except FutureTimeout:
        return Fault("timeout")
    except ProcessExpired as err:
        return Fault("died", str(err))
    except Exception:  # pebble-level failures (e.g. unpicklable result)
        return Fault("error", traceback.format_exc())


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


class RayExecutor:
    """Each group a Ray task, on a running cluster at ``address`` (``ray start --head`` prints it) or a
    local Ray instance started for this run (None). A task declares 1 CPU, plus 1 GPU when cells run on
    ``cuda`` (``device="auto"``: cuda if the cluster has GPUs). At most ``workers`` tasks are out (default:
    as many as the cluster's CPUs, or GPUs, hold), so a timeout counts from about when the task starts; a
    task past it is cancelled (its worker killed). Ray re-runs a task whose worker died ``retries`` times
    itself; after that the group is ``lost``. ``env``: added to each task's environment (``runtime_env``)."""

    label = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, device: str = "auto",
                 retries: int = 2, env: dict[str, str] | None = None):
        import ray  # noqa: F401  (not installed: fail before anything runs)

        self.address, self.workers, self.device, self.retries, self.env = address, workers, device, retries, env
        self.started_here = False
        self.deadlines: dict = {}  # ObjectRef -> time.monotonic() past which it is cancelled, or None

    def start(self, n_cells: int) -> int:
        import ray

        if self.address:
            _check_reachable(self.address)
        if not ray.is_initialized():
            try:
                ray.init(address=self.address or "local", include_dashboard=False, log_to_driver=False,
                         logging_level="WARNING")
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise ExecutorError(f"--ray-address {self.address}: cannot connect to Ray ({err})") from None
            self.started_here = True
        resources = ray.cluster_resources()
        if self.device == "auto":
            self.device = "cuda" if resources.get("GPU", 0) >= 1 else "cpu"
        slot = "GPU" if self.device == "cuda" else "CPU"
        if resources.get(slot, 0) < 1:
            raise ExecutorError(f"--device {self.device}: the Ray cluster has no {slot} ({resources})")
        self.remote = ray.remote(_ray_group)
        return self.workers or int(resources[slot])

    def submit(self, group: list[Cell], checkpoints: list[Path | None], timeout: float | None) -> Hashable:
        ref = self.remote.options(  # named in Ray task listings and process titles
            name=f"bench-cell-{'+'.join(c.cell_id for c in group)}", num_cpus=RAY_CPUS_PER_CELL,
            num_gpus=1 if self.device == "cuda" else 0, max_retries=self.retries, retry_exceptions=False,
            runtime_env={"env_vars": self.env} if self.env else None,
        ).remote(group, self.device, checkpoints)
        self.deadlines[ref] = time.monotonic() + timeout if timeout else None
        return ref

    def wait(self, handles: list[Hashable]) -> list[tuple[Hashable, Outcome]]:
        import ray
        import ray.exceptions

        ready, _ = ray.wait(handles, num_returns=1, timeout=0.5)
        done: list[tuple[Hashable, Outcome]] = []
        for ref in ready:
            try:
                done.append((ref, ray.get(ref)))
            except ray.exceptions.RayError as err:  # worker died past its retries, node lost, ...
                done.append((ref, Fault("lost", f"{type(err).__name__}: {err}")))
        now, ready = time.monotonic(), set(ready)
        for ref in handles:
            deadline = self.deadlines[ref]
            if ref not in ready and deadline is not None and now > deadline:
                ray.cancel(ref, force=True)
                done.append((ref, Fault("timeout")))
        for ref, _ in done:
            del self.deadlines[ref]
        return done

    def close(self, cancel: bool) -> None:
        import ray

        for ref in self.deadlines:  # left only by an interrupted run
            ray.cancel(ref, force=True)
        self.deadlines.clear()
        if self.started_here:
            ray.shutdown()


class SerialExecutor:
    """One group after another in this process, each trained when ``wait`` is called: a debugger, profiler
    or print sees the cell's own code. Nothing can stop a cell in its own process, so timeouts are not
    enforced, and a crash of the cell is a crash of the run."""

    label = "serial"

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.submitted: dict[int, tuple[list[Cell], list[Path | None]]] = {}
        self.handles = itertools.count()

    def start(self, n_cells: int) -> int:
        self.device = resolve_device(self.device)
        return 1

    def submit(self, group: list[Cell], checkpoints: list[Path | None], timeout: float | None) -> int:
        handle = next(self.handles)
        self.submitted[handle] = (group, checkpoints)
        return handle

    def wait(self, handles: list[int]) -> list[tuple[int, Outcome]]:
        group, checkpoints = self.submitted.pop(handles[0])
        return [(handles[0], run_group(group, self.device, checkpoints))]

    def close(self, cancel: bool) -> None:
        self.submitted.clear()
