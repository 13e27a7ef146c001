"""``python -m bench.tune SEARCH.yaml``: an Optuna search whose trials are cells of the harness.

Each trial takes values from Optuna's sampler (``bench.search`` describes the spec), sets them on ``base``
and trains one cell per seed of the spec with the same trainer as ``bench.run``; the objective is the mean
of the metric's final value over those seeds (every trial sees the same seeds). At each evaluation the
trainer's ``on_eval`` hook reports the metric to Optuna at step ``seed_index * generator_iters +
generator_iter`` and asks the pruner; a pruned run stops there. Every cell is stored like an ablation's
(``results/<name>/cells/``, merged into ``runs.parquet``/``curves.parquet``) with the columns ``trial``
and ``optuna_study``; a config already stored with a complete result is replayed from its file rather than
trained again (its row keeps the number of the trial that trained it).

Trial states: COMPLETE; PRUNED (cells stored with status ``pruned``); FAIL for a cell that failed or
diverged (stored with that status; the ``error`` user attribute says why), an invalid config, or a process
that died (see below). ``n_trials`` counts the trials that complete, are pruned or are running (so several
processes stop together); failed trials do not use it up (a killed trial's re-queued copy takes its place),
but the search also stops after ``n_trials`` failures. Queued trials (``search.enqueue``, retries) run first.

Storage: ``--storage`` takes any Optuna RDB URL (``sqlite:///...``, ``postgresql://...``) or
``journal:PATH`` (Optuna's journal file storage, e.g. on NFS); the default is
``sqlite:///results/<name>/optuna.db``. Several processes (``--workers N`` here, or ``bench.tune`` started
on other machines with the same ``--storage``) share the study; a rerun continues it. ``--executor ray`` runs
the ``--workers`` as Ray tasks instead, on a local Ray instance or the cluster at ``--ray-address``: each
task opens the storage and writes its cells under ``--results-dir`` itself, so on a cluster both must be
shared (the default SQLite file is refused there: give ``postgresql://...`` or a journal on a shared file
system). With an RDB storage each running trial records a heartbeat every ``--heartbeat`` seconds; a trial
whose process was killed is marked FAIL once its heartbeat is older than twice that, and re-queued with the
same values (Optuna's ``RetryHeartbeatStaleTrialCallback``); its cells resume from their checkpoints when
``train.checkpoint_every`` is set. Journal storage has no heartbeat: a killed trial stays RUNNING.

A budget study (``search.budget``) is one such study per loss and sampler, named
``<study>.<loss>.<sampler>`` and run in turn; without a pruner a trial's seeds train as one stacked ensemble.

At the end: the best trial, a table of the top trials, and under ``results/<name>/optuna/<study>/``
``trials.csv``, ``best.json`` and Optuna's figures (``optuna.visualization.matplotlib``).

Exit codes: 0 the study has a best trial; 1 interrupted, a worker crashed, or no trial completed; 2 bad input
(or no Ray cluster at ``--ray-address``).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import signal
import sys
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from bench import store
from bench.data.images import spec_data_root
from bench.metrics import column
from bench.run import spec_root, worker_env
from bench.scheduler import ExecutorError
from bench.search import CategoricalParam, FloatParam, IntParam, Search, arms, fingerprint, load, trial_config
from bench.spec import Cell, Spec, SpecError

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # what n_trials counts
RETRIES = 2  # times a trial whose process died is re-queued


class TrialFailed(Exception):
    """A trial without a value (failed or diverged cell, invalid config): Optuna records it as FAIL."""


# ------------------------------------------------------------------------------------- Optuna objects


class TrialSeededRandomSampler(optuna.samplers.RandomSampler):
    """Optuna's random sampling, each (slot, parameter) drawn from a stream seeded by the sampler seed, the
    slot and the parameter. A trial's slot is its number less the re-queued copies of killed trials before
    it (which repeat their original's values), so a study stopped and resumed, shared by several processes,
    or whose killed trial was re-queued draws the values one uninterrupted run draws."""

    def __init__(self, seed: int):
        super().__init__(seed=seed)
        self.seed = seed

    def sample_independent(self, study, trial, param_name, param_distribution):
        retries = sum(t.number < trial.number and "failed_trial" in t.system_attrs
                      for t in study.get_trials(deepcopy=False))
        slot = trial.number - retries
        key = np.random.SeedSequence([self.seed, slot, *param_name.encode()]).generate_state(1)[0]
        return optuna.samplers.RandomSampler(seed=int(key)).sample_independent(study, trial, param_name,
                                                                                 param_distribution)


def make_sampler(search: Search, seed: int | None) -> optuna.samplers.BaseSampler:
    s, samplers = search.sampler, optuna.samplers
    if s.name == "grid":
        return samplers.GridSampler({p: param.grid() for p, param in search.space.items()}, seed=seed, **s.options)
    if s.name == "random" and seed is not None:
        return TrialSeededRandomSampler(seed, **s.options)
    cls = {"tpe": samplers.TPESampler, "random": samplers.RandomSampler, "cmaes": samplers.CmaEsSampler}[s.name]
    return cls(seed=seed, **s.options)


def make_pruner(search: Search, first_report: int) -> optuna.pruners.BasePruner:
    p = search.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(**p.options)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(**{"min_resource": first_report, **p.options})
    return optuna.pruners.NopPruner(**p.options)


def make_storage(url: str, heartbeat: int) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats are "experimental" since Optuna 2.9
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES),
        )


def suggest(trial: optuna.Trial, search: Search) -> dict[str, Any]:
    """The trial's config values, by dotted path (Optuna's parameter names)."""
    values = {}
    for path, p in search.space.items():
        if isinstance(p, FloatParam):
            values[path] = trial.suggest_float(path, p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntParam):
            values[path] = trial.suggest_int(path, p.low, p.high, step=p.step, log=p.log)
        else:
            values[path] = p.value(trial.suggest_categorical(path, p.labels()))
    return values


def optuna_params(search: Search, values: dict[str, Any]) -> dict[str, Any]:
    """Config values -> Optuna parameter values (non-scalar choices are stored as their label)."""
    return {path: p.label(values[path]) if isinstance(p := search.space[path], CategoricalParam) else values[path]
            for path in values}


# --------------------------------------------------------------------------------------------- objective


def _quality(final: dict[str, Any], metric: str) -> dict[str, float]:
    """The objective and the quality metrics (catalogue columns with a direction) among a cell's values."""
    out = {}
    for name, value in final.items():
        try:
            keep = name == metric or column(name).higher_is_better is not None
        except KeyError:
            continue
        if keep and value is not None:
            out[name] = float(value)
    return out


class Objective:
    """Optuna's objective: train (or replay) the trial's cells, report each evaluation, return the mean."""

    def __init__(self, spec: Spec, search: Search, study_dir: Path, study_name: str, device: str):
        from bench import scheduler

        self.spec, self.search, self.study_dir, self.study_name = spec, search, study_dir, study_name
        self.device = scheduler.resolve_device(device)
        self.run_cell = scheduler.run_cell
        self.prov = store.provenance()

    def __call__(self, trial: optuna.Trial) -> float:
        values = suggest(trial, self.search)
        try:
            config = trial_config(self.spec, values)
        except SpecError as err:
            self._fail(trial, f"invalid config: {err}")
        cells = [Cell(self.spec.name, config, seed, values) for seed in self.spec.seeds]
        trial.set_user_attr("config_id", cells[0].config_id)
        trial.set_user_attr("cell_ids", [c.cell_id for c in cells])
        missing = [c for c in cells if self._stored(c) is None]
        if self.search.pruner.name == "none" and len(missing) > 1:
            self._train_stacked(trial, missing)
        finals = []
        for i, cell in enumerate(cells):
            finals.append(self._cell(trial, cell, offset=i * config["train"]["generator_iters"]))
        means = {k: sum(f[k] for f in finals) / len(finals) for k in finals[0] if all(k in f for f in finals)}
        for name, value in means.items():
            trial.set_user_attr(name, value)
        return means[self.search.objective.metric]

    def _train_stacked(self, trial: optuna.Trial, cells: list[Cell]) -> None:
        """Without a pruner nothing watches a run's evaluations, so the trial's seeds train as stacked
        ensembles (``bench.scheduler.ensembles``; each member's curves as if trained alone) and are stored;
        ``_cell`` then replays them."""
        from bench import scheduler

        for group in scheduler.ensembles(cells, workers=1, max_members=scheduler.ENSEMBLE):
            checkpoints = [store.checkpoint_path(self.study_dir, c.cell_id) for c in group]
            for cell, result in zip(group, scheduler.run_group(group, self.device, checkpoints), strict=True):
                store.write_cell(self.study_dir, cell, result, self.prov,
                                 extra={"trial": trial.number, "optuna_study": self.study_name})

    def _fail(self, trial: optuna.Trial, reason: str) -> NoReturn:
        trial.set_user_attr("error", reason)
        raise TrialFailed(reason)

    def _cell(self, trial: optuna.Trial, cell: Cell, offset: int) -> dict[str, float]:
        """One seed of the trial: its final quality metrics, or TrialPruned / TrialFailed."""
        metric = self.search.objective.metric
        stored = self._stored(cell)
        if stored is not None:  # replay the stored curve so the pruner sees it as if trained now
            row, curves = stored
            points = curves[curves["metric"] == metric].sort_values("generator_iter")
            for step, value in zip(points["generator_iter"], points["value"], strict=True):
                trial.report(float(value), offset + int(step))
                if trial.should_prune():
                    raise optuna.TrialPruned(f"seed {cell.seed} at generator step {step} (stored cell)")
            status, final, error, diverged_at = row["status"], _quality(row, metric), row["error"], row["diverged_at"]
        else:
            def on_eval(step: int, values: dict[str, float]) -> bool:
                if metric not in values:
                    return False
                trial.report(values[metric], offset + step)
                return trial.should_prune()

            result = self.run_cell(cell, self.device, store.checkpoint_path(self.study_dir, cell.cell_id), on_eval)
            store.write_cell(self.study_dir, cell, result, self.prov,
                             extra={"trial": trial.number, "optuna_study": self.study_name})
            status, final = result.status, _quality(result.final, metric)
            error, diverged_at = result.error, result.diverged_at
        if status == "pruned":
            raise optuna.TrialPruned(f"seed {cell.seed} pruned")
        if status == "diverged":
            self._fail(trial, f"seed {cell.seed} diverged at generator step {diverged_at}")
        if status != "ok":
            last_line = (error or "").strip().splitlines()[-1:] or [""]
            self._fail(trial, f"seed {cell.seed} {status}: {last_line[0]}")
        if metric not in final or math.isnan(final[metric]):
            self._fail(trial, f"seed {cell.seed}: objective {metric!r} is missing or NaN")
        return final

    def _stored(self, cell: Cell):
        """(runs row, curves) of a complete stored result of this cell (ok or diverged), else None."""
        path = store.cell_path(self.study_dir, cell.cell_id)
        if not path.exists():
            return None
        try:
            runs, curves = store.read_cell(path)
        except store.CorruptCell:
            return None
        row = runs.iloc[0].to_dict()
        return (row, curves) if row["status"] in ("ok", "diverged") else None


# ----------------------------------------------------------------------------------------------- workers


def studies(spec: Spec, search: Search, study_name: str) -> list[tuple[str, Spec, Search]]:
    """(study name, spec, search) of each Optuna study the spec makes: one for a search, one per loss and
    sampler for a budget study (``bench.search.arms``), named ``<study>.<loss>.<sampler>``."""
    if search.budget is None:
        return [(study_name, spec, search)]
    return [(arm.study_name(study_name), arm.spec, arm.search) for arm in arms(spec, search)]


def open_study(spec: Spec, search: Search, storage_url: str, study_name: str, heartbeat: int,
               first_report: int) -> optuna.Study:
    """Create the study (and queue ``search.enqueue``) or load it; refuse one made by another spec."""
    storage = make_storage(storage_url, heartbeat)
    sampler, pruner = make_sampler(search, search.sampler.seed), make_pruner(search, first_report)
    direction, key = search.direction, fingerprint(spec, search)
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction=direction,
                                    sampler=sampler, pruner=pruner)
        study.set_user_attr("bench_spec", spec.name)
        study.set_user_attr("bench_fingerprint", key)
        study.set_user_attr("objective", search.objective.metric)
        for values in search.enqueue:
            study.enqueue_trial(optuna_params(search, values), skip_if_exists=True)
        return study
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    if study.user_attrs.get("bench_fingerprint", key) != key:
        raise SpecError("--study-name", f"study {study_name!r} in {storage_url} was made by a different spec "
                                        f"(base, seeds or search changed): give another --study-name")
    if study.direction.name.lower() != direction:
        raise SpecError("search.objective.direction", f"study {study_name!r} in {storage_url} does not {direction}")
    return study


def _counts(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False)
    return sum(t.state in COUNTED for t in trials), sum(t.state == TrialState.FAIL for t in trials)


def sampler_seed(seed: int | None, offset: int, n_existing: int) -> int | None:
    """The sampler seed of one process: from the spec's seed, the process's offset and the trials the study
    already has, so that a rerun does not propose the first trials' values again, nor two workers the same."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, offset, n_existing]).generate_state(1)[0])


def work(spec_path: str, storage_url: str, study_name: str, study_dir: str, n_trials: int, seed_offset: int,
         heartbeat: int, device: str, threads: int | None, log_level: int) -> bool:
    """One worker process: run trials until each of the spec's studies (``studies``, in turn) has
    ``n_trials`` (or as many failures). The first Ctrl-C stops it after the running trial
    (``study.stop()``); returns whether that happened."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(log_level)
    for name, spec, search in studies(*load(spec_path), study_name):
        if _work_one(spec, search, storage_url, name, study_dir, n_trials, seed_offset, heartbeat, device):
            return True
    return False


def _work_one(spec: Spec, search: Search, storage_url: str, study_name: str, study_dir: str, n_trials: int,
              seed_offset: int, heartbeat: int, device: str) -> bool:
    first = trial_config(spec, {p: param.probes()[0] for p, param in search.space.items()})
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage_url, heartbeat),
                              pruner=make_pruner(search, first["eval"]["every"]))
    seed = search.sampler.seed  # trial-seeded random sampling needs no per-process seed
    if search.sampler.name != "random":
        seed = sampler_seed(seed, seed_offset, len(study.trials))
    study.sampler = make_sampler(search, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a trial left RUNNING by a killed process is re-queued
    counted, failed = _counts(study)
    if counted >= n_trials or failed >= n_trials:
        return False
    stopped = False

    def stop_after_trial(signum, frame):
        nonlocal stopped
        stopped = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts the running trial
        print("stopping after the running trial (Ctrl-C again aborts it; it is then recorded as failed)",
              file=sys.stderr)
        study.stop()

    previous = signal.signal(signal.SIGINT, stop_after_trial)
    try:
        study.optimize(
            Objective(spec, search, Path(study_dir), study_name, device),
            catch=(TrialFailed,),
            callbacks=[MaxTrialsCallback(n_trials, states=COUNTED),
                       MaxTrialsCallback(n_trials, states=(TrialState.FAIL,))],
            gc_after_trial=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    return stopped


def _worker(env: dict[str, str], *args) -> None:
    """``work`` in a process of its own group (a terminal's Ctrl-C reaches the parent only, which passes
    each one on exactly once), with ``env`` added to its environment (``bench.run.worker_env``)."""
    os.setpgrp()
    os.environ.update(env)
    work(*args)


def ray_workers(executor, job: tuple, seed_offset: int, workers: int, heartbeat: int, log_level: int,
                console: Console) -> tuple[bool, bool]:
    """``work`` as ``workers`` Ray tasks on the Ray instance ``executor`` (a started ``RayExecutor``) holds,
    each asking for 1 CPU (its torch threads: as many), or a share of the GPUs on ``cuda``, and getting the executor's
    ``env``. Ctrl-C cancels the tasks, which Ray passes on to them as a Ctrl-C: the first stops ``work`` after
    the running trial, the second aborts that trial, a third kills the tasks. Returns (interrupted, crashed)."""
    import ray
    import ray.exceptions

    from bench import tune  # its work is pickled by reference (as a function of __main__ it would be by value)
    from bench.executors import RAY_CPUS_PER_CELL

    gpus = min(1.0, ray.cluster_resources().get("GPU", 0) / workers) if executor.device == "cuda" else 0
    task, runtime_env = ray.remote(tune.work), {"env_vars": executor.env} if executor.env else None
    refs = [task.options(name=f"bench-tune-{k}", num_cpus=RAY_CPUS_PER_CELL, num_gpus=gpus, max_retries=0,
                         runtime_env=runtime_env).remote(*job, seed_offset + k, heartbeat, executor.device,
                                                         RAY_CPUS_PER_CELL, log_level) for k in range(workers)]
    presses, pending = 0, refs
    while pending:
        try:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=1)
        except KeyboardInterrupt:
            presses += 1
            if presses == 1:
                console.print("stopping after the running trials (Ctrl-C again aborts them; they are then recorded "
                              "as failed; a third time kills the tasks)", markup=False, highlight=False)
            for ref in pending:
                ray.cancel(ref, force=presses > 2)
    crashed = False
    for ref in refs:
        try:
            ray.get(ref)
        except ray.exceptions.RayError as err:
            if not presses:
                crashed = True
                console.print(f"{type(err).__name__}: {err}", markup=False, highlight=False)
    return presses > 0, crashed


# ------------------------------------------------------------------------------------------------ report


def top_table(study: optuna.Study, k: int = 10) -> Table:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    done.sort(key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)
    metric = study.user_attrs.get("objective", "value")
    table = Table(title=f"top {min(k, len(done))} of {len(done)} completed trials", title_justify="left")
    names = list(study.best_trial.params) if done else []
    for name in ["trial", metric, *names, "seconds"]:
        table.add_column(name, justify="right")
    for t in done[:k]:
        seconds = t.duration.total_seconds() if t.duration else math.nan
        table.add_row(str(t.number), f"{t.value:.4g}", *[_fmt(t.params.get(n)) for n in names], f"{seconds:.0f}")
    return table


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def save_figures(study: optuna.Study, out_dir: Path) -> dict[str, str]:
    """Optuna's matplotlib figures as PNG files; name -> file, or name -> why it was skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    plots = {"history": vis.plot_optimization_history, "intermediate_values": vis.plot_intermediate_values,
             "importances": vis.plot_param_importances, "slice": vis.plot_slice}
    if len(study.best_trial.params) > 1:
        plots["contour"] = vis.plot_contour
    saved = {}
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            saved[name] = f"skipped: {err}"
            continue
        figure = np.asarray(axes).flat[0].figure
        n = len(study.best_trial.params)
        if name in ("slice", "contour"):  # one panel per parameter (pair): give each room
            figure.set_size_inches(4 * n, 4 * (n if name == "contour" else 1))
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        saved[name] = str(path)
    return saved


def report(study: optuna.Study, spec: Spec, search: Search, out_dir: Path, storage_url: str, console: Console) -> bool:
    """Print and save the study's outcome; False when no trial has completed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    console.print(f"{study.study_name}: {len(trials)} trials (" + ", ".join(
        f"{n} {s.lower()}" for s, n in states.items() if n) + ")")
    study.trials_dataframe().to_csv(out_dir / "trials.csv", index=False)
    if states["RUNNING"]:
        console.print(f"{states['RUNNING']} trials still RUNNING: another worker's, or left by a killed process "
                      "(re-queued once its heartbeat is stale; run again to finish them)")
    if not states["COMPLETE"]:
        console.print("no completed trial yet")
        return False
    best = study.best_trial
    values = {p: (search.space[p].value(v) if isinstance(search.space[p], CategoricalParam) else v)
              for p, v in best.params.items()}
    summary = {"study": study.study_name, "trial": best.number, "metric": search.objective.metric,
               "direction": search.direction, "value": best.value, "params": values,
               "user_attrs": best.user_attrs, "config": trial_config(spec, values)}
    (out_dir / "best.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    console.print(top_table(study))
    console.print(f"best: trial {best.number}, {search.objective.metric} = {best.value:.4g}, params "
                  + ", ".join(f"{p}={_fmt(v)}" for p, v in values.items()))
    for name, where in save_figures(study, out_dir).items():
        console.print(f"  {name}: {where}", markup=False, highlight=False)
    console.print(f"files: {out_dir}; dashboard: optuna-dashboard {storage_url}", markup=False, highlight=False)
    return True


# -------------------------------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.tune", description=__doc__.splitlines()[0])
    p.add_argument("spec", help="search spec (YAML with a search block)")
    p.add_argument("--n-trials", type=int, default=None, help="trials of the study in all (default: search.n_trials)")
    p.add_argument("--storage", default=None,
                   help="Optuna RDB URL or journal:PATH (default: sqlite:///RESULTS_DIR/<name>/optuna.db)")
    p.add_argument("--study-name", default=None, help="Optuna study name (default: the spec's name)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes (or Ray tasks) sharing the study (default: 1)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: worker processes here; ray: Ray tasks (default: local)")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster address, e.g. HEAD:6379 (with --executor ray; default: a local Ray instance)")
    p.add_argument("--results-dir", default="results", help="cells go to RESULTS_DIR/<name>/ (default: results)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed-offset", type=int, default=0,
                   help="mixed into the sampler seed (worker k of --workers adds k): give each bench.tune started "
                        "on the same study its own, or their samplers may propose the same values")
    p.add_argument("--heartbeat", type=int, default=30,
                   help="seconds between heartbeats of a running trial (RDB storages); a trial silent for twice "
                        "that is failed and re-queued (default: 30)")
    p.add_argument("--quiet", action="store_true", help="no per-trial log lines")
    return p


@dataclass
class _Setup:
    """What ``main`` resolved before any trial runs: the spec and its search, one (name, spec, search) per study, where
    results and the Optuna storage live, the workers' environment and, for ``--executor ray``, the executor."""

    spec: Spec
    search: Search
    plan: list[tuple[str, Spec, Search]]
    study_dir: Path
    storage_url: str
    study_name: str
    env: dict[str, str]
    executor: Any = None


def _check_flags(args: argparse.Namespace) -> None:
    for flag in ("n_trials", "workers", "heartbeat"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise SpecError("--" + flag.replace("_", "-"), "must be >= 1")
    if args.ray_address is not None and args.executor != "ray":
        raise SpecError("--ray-address", "needs --executor ray")
    if args.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SpecError("--executor", 'ray is not installed (pip install -e ".[ray]")') from None
    if args.ray_address and not args.storage:
        raise SpecError("--storage", f"the default SQLite file under {args.results_dir}/ is on this machine's "
                        f"disk, not shared with the Ray cluster at {args.ray_address}: pass --storage "
                        "postgresql://... or journal:PATH on a shared file system")


def _set_up(args: argparse.Namespace, err: Console) -> _Setup:
    """Validate flags and spec, check each study's sampler and pruner build, create (or reopen) the studies."""
    _check_flags(args)
    spec, search = load(args.spec)
    if spec.matrix or spec.include or spec.exclude:
        err.print("note: bench.tune searches from base; matrix/include/exclude are for bench.run", markup=False)
    study_name = args.study_name or spec.name
    plan = studies(spec, search, study_name)
    first_eval = {}
    for name, arm_spec, arm_search in plan:
        first = trial_config(arm_spec, {p: param.probes()[0] for p, param in arm_search.space.items()})
        first_eval[name] = first["eval"]["every"]
        _check_builds("search.budget.samplers" if search.budget else "search.sampler",
                      make_sampler, arm_search, arm_search.sampler.seed)
        _check_builds("search.pruner", make_pruner, arm_search, first_eval[name])
    study_dir = Path(args.results_dir) / spec.name
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / "spec.yaml").write_text(Path(args.spec).read_text())
    storage_url = absolute(args.storage or f"sqlite:///{study_dir / 'optuna.db'}")
    with _creation_lock(storage_url):
        for name, arm_spec, arm_search in plan:
            open_study(arm_spec, arm_search, storage_url, name, args.heartbeat, first_eval[name])
    setup = _Setup(spec, search, plan, Path(os.path.abspath(study_dir)),  # Ray's workers may start in another directory
                   storage_url, study_name, worker_env(args.spec, spec))
    if args.executor == "ray":
        from bench.executors import RayExecutor

        setup.executor = RayExecutor(args.ray_address, device=args.device, env=setup.env)
        setup.executor.start(args.workers)  # connects to (or starts) Ray, resolves --device auto
    return setup


def _run_processes(args: argparse.Namespace, setup: _Setup, job: tuple, log_level: int) -> tuple[bool, bool]:
    """``--workers`` local processes sharing the studies' storage; returns (interrupted, crashed)."""
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(setup.env, *job, args.seed_offset + k, args.heartbeat, args.device,
                                               threads, log_level)) for k in range(args.workers)]
    for proc in procs:
        proc.start()
    interrupted = False
    while any(proc.is_alive() for proc in procs):
        try:
            for proc in procs:
                proc.join()
        except KeyboardInterrupt:  # pass each Ctrl-C on: the first stops the workers after their trials
            interrupted = True
            for proc in procs:
                if proc.is_alive():
                    os.kill(proc.pid, signal.SIGINT)
    return interrupted, any(proc.exitcode != 0 for proc in procs) and not interrupted


def _run_trials(args: argparse.Namespace, setup: _Setup, n_trials: int, log_level: int,
                err: Console) -> tuple[bool, bool]:
    """Run the studies' trials on the chosen executor; returns (interrupted, crashed)."""
    job = (str(setup.study_dir / "spec.yaml"), setup.storage_url, setup.study_name, str(setup.study_dir), n_trials)
    if args.executor == "ray":
        try:
            return ray_workers(setup.executor, job, args.seed_offset, args.workers, args.heartbeat, log_level, err)
        finally:
            setup.executor.close(cancel=True)  # shuts Ray down if this run started it
    if args.workers > 1:
        return _run_processes(args, setup, job, log_level)
    try:
        with spec_data_root(spec_root(args.spec, setup.spec)):
            return work(*job, args.seed_offset, args.heartbeat, args.device, None, log_level), False
    except KeyboardInterrupt:
        return True, False


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    log_level = optuna.logging.WARNING if args.quiet else optuna.logging.INFO
    optuna.logging.set_verbosity(log_level)
    try:
        setup = _set_up(args, err)
    except (SpecError, ExecutorError) as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except OSError as e:
        err.print(f"error: {args.results_dir}: cannot write results ({e})", markup=False, highlight=False,
                  soft_wrap=True)
        return 2
    except (ValueError, ImportError, optuna.exceptions.OptunaError) as e:  # bad URL, missing DB driver
        err.print(f"error: --storage: {str(e).splitlines()[0]}", markup=False, highlight=False, soft_wrap=True)
        return 2

    n_trials = args.n_trials or setup.search.n_trials
    interrupted, crashed = _run_trials(args, setup, n_trials, log_level, err)
    store.write_merged(setup.study_dir)
    ok = True
    for name, arm_spec, arm_search in setup.plan:
        study = optuna.load_study(study_name=name, storage=make_storage(setup.storage_url, args.heartbeat))
        ok &= report(study, arm_spec, arm_search, setup.study_dir / "optuna" / name, setup.storage_url, console)
    if interrupted:
        err.print("interrupted: finished trials are stored; run again to continue the study")
    if crashed:
        err.print("a worker process crashed; see its output above")
    return 0 if ok and not (interrupted or crashed) else 1


def _check_builds(where: str, build, *args) -> None:
    """``build(*args)`` (an Optuna sampler or pruner from the spec), its error a ``SpecError`` at ``where``."""
    try:
        build(*args)
    except (TypeError, ValueError, ImportError) as e:
        raise SpecError(where, str(e).splitlines()[0]) from None


def absolute(url: str) -> str:
    """``url`` with a relative journal or SQLite file made absolute: workers may run in another directory."""
    for prefix in ("journal:", "sqlite:///"):
        path = url.removeprefix(prefix)
        if url.startswith(prefix) and path != ":memory:":
            return prefix + os.path.abspath(path)  # not resolved: a shared mount's symlink stays as given
    return url


def _creation_lock(storage_url: str):
    """Several bench.tune started at once on one SQLite file must not create its tables concurrently."""
    if storage_url.startswith("sqlite:///"):
        from filelock import FileLock

        return FileLock(storage_url.removeprefix("sqlite:///") + ".lock")
    return nullcontext()


if __name__ == "__main__":
    sys.exit(main())
