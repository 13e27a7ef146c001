"""Reports: the papers' comparison figures and the regression report, from stored results only.

Data flows one way (spec -> cells -> trainer -> metrics -> store -> reports): everything here reads what
``bench.store`` wrote and never imports the trainer. Each figure is one function, named after what it
reproduces, registered in ``FIGURES`` with the test of whether a study holds its data. It composes a
``table()`` (tidy numbers from the study: what the report prints, ``data/<key>.csv`` holds and
``bench.claims`` reads) with a ``draw()`` (plots only, from those tables) into a ``Section``; as rliable's
library / plot_utils split. A module with one figure names them ``table`` / ``draw``, a paper's module
``<figure>_table`` / ``<figure>_draw`` (``wgan.fig3_4_table``, ``wgangp.table2_draw``):

==============================================  =============================================================
``wgan_fig3_4_estimate_vs_quality``             WGAN Figs. 3-4: the critic's estimate against sample quality
``wgan_figs5_7_samples``                        WGAN Figs. 5-7: samples side by side per (loss x architecture)
``wgangp_fig1a_value_surfaces``                 WGAN-GP Fig. 1a: critic value surfaces, clipping vs GP
``wgangp_fig1b_gradient_norms_and_weights``     WGAN-GP Fig. 1b: per-layer gradient norms, weight histograms
``wgangp_fig3_quality_vs_time``                 WGAN-GP Fig. 3: quality vs generator iterations and wall clock
``wgangp_table2_architecture_robustness``       WGAN-GP Table 2: success counts over architectures
``toy_summary``                                 quality per ablation axis (toy ablations, quickstart)
``budget_vs_best``                              expected best score after n search trials per loss
``claims_convergence``                          the curves a claim's flattening criterion reads (bench.claims)
==============================================  =============================================================
"""

from __future__ import annotations

from pathlib import Path

from reports import budget, convergence, toy, wgan, wgangp  # noqa: F401  (register the figures)
from reports.section import FIGURES, Section, style
from reports.study import Study, StudyError

__all__ = ["FIGURES", "Section", "Study", "StudyError", "build"]


def build(study_dir: str | Path, out: str | Path | None = None) -> tuple[list[Section], dict[str, Path]]:
    """Every figure that fits the study, written under ``out`` (default ``<study_dir>/report``), with
    ``report.md`` and ``report.html``; the claims this study tests (``bench.claims``) come first."""
    from bench.claims import for_study
    from reports import render

    study = Study.load(study_dir)
    out = Path(out) if out is not None else Path(study_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    style()
    sections = [entry.obj(study, out) for entry in FIGURES  # a budget study's trials are no ablation's configs
                if entry.meta["applies"](study) and entry.meta.get("budget", False) == study.is_budget]
    return sections, render.write(study, sections, out, claims=for_study(study))
