"""``report.md`` and a self-contained ``report.html`` (figures inlined) from the figures' sections."""

from __future__ import annotations

import base64
import html
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

from bench.summary import INTERVALS
from reports.section import Section
from reports.study import Study

MAX_ROWS = 60  # longer tables are cut in the report (the full table is in data/<key>.csv)


def table(df: pd.DataFrame) -> str:
    """A pipe table (tabulate), floats to 4 significant digits, lists as text."""
    df = df.astype({c: object for c in df.select_dtypes("category").columns})
    for c in df.columns:
        if df[c].map(lambda v: isinstance(v, (list, tuple))).any():
            df[c] = df[c].map(lambda v: ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    df = df.astype(object).where(df.notna(), None)  # NaN prints as missing
    return df.to_markdown(index=False, floatfmt=".4g", missingval="-")


def _header(study: Study, sections: list[Section]) -> list[str]:
    runs = study.runs
    counts = runs["status"].value_counts()
    shas = sorted(runs["git_sha"].dropna().unique()) if "git_sha" in runs else []
    lines = [
        f"# Report: {study.name}",
        "",
        f"- results: `{study.path}` ({len(runs)} cells, {runs['config_id'].nunique()} configs; "
        + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")",
        f"- spec: {study.spec_summary()}",
        f"- seeds: {', '.join(map(str, study.seeds))}; axes: {', '.join(f'`{a}`' for a in study.axes) or 'none'}",
        f"- code: {', '.join(f'`{s}`' for s in shas) or 'unknown'}; report written "
        + datetime.now(timezone.utc).isoformat(timespec="seconds"),
        f"- {INTERVALS} (the table column `interval` names the one used)",
        "",
        "Figures: " + ", ".join(f"[{s.title}](#{_anchor(s.title)})" for s in sections),
        "",
    ]
    return lines


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).strip().replace(" ", "-")


def claims_section(claims: pd.DataFrame, sections: list[Section]) -> list[str]:
    """The claims this study tests, each verdict linked to the figure that shows its evidence."""
    from bench.claims import CLAIMS, effect_text

    titles = {s.key: s.title for s in sections}
    rows = []
    for _, c in claims.iterrows():
        key = CLAIMS.entry(c["claim_id"]).meta["figure"]
        flat = "-" if c["flattened"] is None or pd.isna(c["flattened"]) else ("yes" if c["flattened"] else "no")
        rows.append({"verdict": f"**{c['verdict']}**", "claim": f"`{c['claim_id']}` ({c['paper']}, {c['where']})",
                     "statement": c["statement"], "effect [95%]": effect_text(c), "interval": c["interval"] or "-",
                     "seeds": c["n_seeds"], "flattened": flat,
                     "figure": f"[{titles[key]}](#{_anchor(titles[key])})" if key in titles else "-",
                     "evidence": c["detail"]})
    return ["## Claims", "",
            "Each claim's effect is oriented so that larger supports it; `supported` when its 95% interval over "
            "training seeds lies above the claim's threshold, `contradicted` when below, `inconclusive` when it "
            "straddles it or there is no interval (fewer than 3 seeds). `flattened`: over the last quarter of the "
            "evaluations every config's seed-mean curve moved by at most 10% of its scale, or, for a claim about a "
            "quantity pooled over configs, the claim's effect recomputed at every evaluation did (figure *Claims: "
            "did the preset reach its regime*; `bench/claims.py`).",
            "", table(pd.DataFrame(rows)), ""]


def markdown(study: Study, sections: list[Section], out: Path, claims: pd.DataFrame | None = None) -> str:
    lines = _header(study, sections)
    if claims is not None and len(claims):
        lines += claims_section(claims, sections)
    for s in sections:
        png = next((f for f in s.files if f.suffix == ".png"), None)
        svg = next((f for f in s.files if f.suffix == ".svg"), None)
        lines += [f"## {s.title}", ""]
        if png is not None:
            lines += [f"![{s.title}]({png.relative_to(out)})", ""]
            if svg is not None:
                lines += [f"Files: [`{png.name}`]({png.relative_to(out)}), [`{svg.name}`]({svg.relative_to(out)}), "
                          f"[`data/{s.key}.csv`](data/{s.key}.csv)", ""]
        used = ", ".join(map(str, s.seeds)) if s.seeds else "none"
        lines += [f"**What it shows.** {s.description}", "",
                  f"**Spec.** {study.spec_summary(short=True)}", "",
                  f"**Seeds.** {used}", ""]
        lines += [f"- {n}" for n in s.notes] + ([""] if s.notes else [])
        lines += _tables(s)
    if study.spec_text:
        lines += ["## Spec", "", f"`{study.path / 'spec.yaml'}`:", "", "```yaml", study.spec_text.rstrip(), "```", ""]
    return "\n".join(lines)


def _tables(s: Section) -> list[str]:
    lines = []
    main = s.data if s.shown is None else s.shown
    for name, df in [("Numbers behind the figure", main), *s.tables.items()]:
        shown = df.head(MAX_ROWS)
        lines += [f"**{name}.**", "", table(shown), ""]
        if len(df) > len(shown) or (df is main and s.shown is not None):
            lines += [f"(all {len(s.data) if df is main else len(df)} rows: `data/{s.key}.csv`)", ""]
    return lines


def to_html(md: str, out: Path, title: str) -> str:
    """The Markdown rendered by markdown-it, with every local PNG inlined as a data URI."""
    body = MarkdownIt("commonmark").enable("table").render(md)

    def inline(m: re.Match) -> str:
        path = out / html.unescape(m.group(1))
        if not path.exists() or path.suffix != ".png":
            return m.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    body = re.sub(r'src="([^"]+)"', inline, body)
    body = re.sub(r"<h2>([^<]+)</h2>",
                  lambda m: f'<h2 id="{_anchor(html.unescape(m.group(1)))}">{m.group(1)}</h2>', body)
    css = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
           "img{max-width:100%}table{border-collapse:collapse;font-size:.85em;margin:.5em 0}"
           "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
           "pre{background:#f6f6f6;padding:.8em;overflow:auto}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body>\n{body}</body></html>\n")


def write(study: Study, sections: list[Section], out: Path, claims: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``data/<key>.csv`` per section, ``report.md`` and ``report.html`` under ``out`` (the claims
    section first when ``claims`` has rows)."""
    (out / "data").mkdir(parents=True, exist_ok=True)
    for s in sections:
        s.data.to_csv(out / "data" / f"{s.key}.csv", index=False)
        for name, df in s.tables.items():
            df.to_csv(out / "data" / f"{s.key}.{_anchor(name).replace('-', '_')}.csv", index=False)
    md = markdown(study, sections, out, claims)
    paths = {"md": out / "report.md", "html": out / "report.html"}
    paths["md"].write_text(md)
    paths["html"].write_text(to_html(md, out, f"Report: {study.name}"))
    return paths

