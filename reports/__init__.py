"""Reports: the papers' comparison figures and the regression report, from stored results only.

Data flows one way (spec -> cells -> trainer -> metrics -> store -> reports): everything here reads what
``bench.store`` wrote and never imports the trainer. Each figure is one function, named after what it
reproduces, registered in ``FIGURES`` with the test of whether a study holds its data:

==============================================  =============================================================
``wgan_fig3_4_estimate_vs_quality``             WGAN Figs. 3-4: the critic's estimate against sample quality
``wgan_figs5_7_samples``                        WGAN Figs. 5-7: samples side by side per (loss x architecture)
``wgangp_fig1a_value_surfaces``                 WGAN-GP Fig. 1a: critic value surfaces, clipping vs GP
``wgangp_fig1b_gradient_norms_and_weights``     WGAN-GP Fig. 1b: per-layer gradient norms, weight histograms
``wgangp_fig3_quality_vs_time``                 WGAN-GP Fig. 3: quality vs generator iterations and wall clock
``wgangp_table2_architecture_robustness``       WGAN-GP Table 2: success counts over architectures
``toy_summary``                                 quality per ablation axis (toy ablations, quickstart)
==============================================  =============================================================
"""

from __future__ import annotations

from pathlib import Path

from reports.section import FIGURES, Section, style
from reports.study import Study, StudyError

from reports import toy, wgan, wgangp  # noqa: E402,F401  (register the figures)

__all__ = ["FIGURES", "Section", "Study", "StudyError", "build"]


def build(study_dir: str | Path, out: str | Path | None = None) -> tuple[list[Section], dict[str, Path]]:
    """Every figure that fits the study, written under ``out`` (default ``<study_dir>/report``), with
    ``report.md`` and ``report.html``."""
    from reports import render

    study = Study.load(study_dir)
    out = Path(out) if out is not None else Path(study_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    style()
    sections = [entry.obj(study, out) for entry in FIGURES if entry.meta["applies"](study)]
    return sections, render.write(study, sections, out)
