"""``python -m bench.regress results/<study> --baseline DIR_OR_PARQUET [--out FILE]``: compare a run with a
baseline, config by config (see ``reports.regression``: a metric regresses when it is worse beyond the
tolerance and a permutation test over seeds, Holm-adjusted, says it is not seed noise), and print a Markdown
report fit for a pull request.

Exit codes: 0 no regression; 1 some metric regressed; 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.regress", description=__doc__.splitlines()[0])
    p.add_argument("study", help="the run: a study directory (results/<study>) or its runs.parquet")
    p.add_argument("--baseline", required=True,
                   help="a study directory, a directory with runs.parquet, or a runs.parquet")
    p.add_argument("--out", default=None, help="also write the Markdown report to this file")
    p.add_argument("--rel-tol", type=float, default=0.1, help="relative tolerance on each metric (default 0.1)")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="family-wise significance level of the tests over seeds, Holm-adjusted (default 0.01)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from reports.regression import RegressError, report

    try:
        if args.rel_tol < 0:
            raise RegressError("--rel-tol: must be >= 0")
        if not 0 < args.alpha < 1:
            raise RegressError("--alpha: must be in (0, 1)")
        cmp, text = report(args.study, args.baseline, rel_tol=args.rel_tol, alpha=args.alpha)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text + "\n")
    except (RegressError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text)
    return 1 if cmp.regressed else 0


if __name__ == "__main__":
    sys.exit(main())
