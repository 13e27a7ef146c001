"""``python -m bench.report results/<study> [--out DIR]``: the papers' figures for a stored study.

Writes every figure whose data the study holds (PNG + SVG), ``data/<figure>.csv`` with the numbers behind
each, ``report.md`` and a self-contained ``report.html`` (see ``reports``). Exit codes: 0 written; 2 bad input.
"""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    p.add_argument("study", help="a study directory, results/<study>")
    p.add_argument("--out", default=None, help="output directory (default: <study>/report)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from reports import StudyError, build

    try:
        sections, paths = build(args.study, args.out)
    except StudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for s in sections:
        print(f"{s.key}: {', '.join(str(f) for f in s.files)}")
    print(f"report: {paths['md']} and {paths['html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
