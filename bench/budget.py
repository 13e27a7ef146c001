"""Expected best score after n trials of a random search (Dodge et al. 2019, *Show Your Work*, section 3).

Given the N scores v_(1) <= ... <= v_(N) of a search's trials, with empirical CDF F(v_(i)) = i/N, the
expected maximum of n i.i.d. draws from it is (Dodge et al. 2019, eq. 1 with the empirical CDF)

    E[max_n] = sum_i v_(i) * ((i/N)^n - ((i-1)/N)^n),

its variance E[max_n^2] - E[max_n]^2 with v_(i)^2 in place of v_(i). ``without_replacement`` is the
variant of Tang et al. (2020, *Showing Your Work Doesn't Always Work*, section 3), the expected maximum of
n <= N draws without replacement, weights C(i-1, n-1) / C(N, n). For a lower-is-better metric the best is
the minimum: the scores are negated, the formulas applied and the result negated back. The band is a
percentile bootstrap over the N scores (resampled with replacement), so it stays inside the scores' range.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import gammaln

Method = Literal["with_replacement", "without_replacement"]
METHODS: tuple[Method, ...] = ("with_replacement", "without_replacement")


def _weights(n_scores: int, method: Method) -> np.ndarray:
    """(N, N) matrix W with W[i-1, n-1] the probability that the best of n draws is the i-th smallest score."""
    i = np.arange(1, n_scores + 1, dtype=float)[:, None]
    n = np.arange(1, n_scores + 1, dtype=float)[None, :]
    if method == "with_replacement":
        return (i / n_scores) ** n - ((i - 1) / n_scores) ** n
    if method == "without_replacement":
        def log_comb(a, b):
            return gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)

        possible = i >= n  # the i-th smallest can be the best of n only if n - 1 smaller ones exist
        log_w = log_comb(np.maximum(i - 1, n - 1), n - 1) - log_comb(n_scores, n)
        return np.where(possible, np.exp(np.where(possible, log_w, 0.0)), 0.0)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _signed_sorted(scores, higher_is_better: bool) -> tuple[np.ndarray, float]:
    v = np.asarray(scores, dtype=float)
    if v.ndim != 1 or not len(v) or not np.isfinite(v).all():
        raise ValueError("scores must be a non-empty 1-D array of finite numbers")
    sign = 1.0 if higher_is_better else -1.0
    return np.sort(sign * v), sign


def expected_best(scores, higher_is_better: bool = True, method: Method = "with_replacement"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Expected best score after n = 1..N trials and its standard deviation (module docstring), each an
    array of length N."""
    v, sign = _signed_sorted(scores, higher_is_better)
    w = _weights(len(v), method)
    mean = v @ w
    var = np.maximum((v**2) @ w - mean**2, 0.0)
    return sign * mean, np.sqrt(var)


def bootstrap(scores, higher_is_better: bool = True, method: Method = "with_replacement", n_boot: int = 1000,
              seed: int = 0) -> np.ndarray:
    """(n_boot, N) expected-best curves of the scores resampled with replacement (seeded)."""
    v, sign = _signed_sorted(scores, higher_is_better)
    rng = np.random.default_rng(seed)
    resampled = np.sort(rng.choice(v, size=(n_boot, len(v)), replace=True), axis=1)
    return sign * (resampled @ _weights(len(v), method))


def curve(scores, higher_is_better: bool = True, method: Method = "with_replacement", level: float = 0.95,
          n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Tidy curve: one row per n = 1..N with ``expected_best``, ``std`` and the bootstrap band ``lo``, ``hi``."""
    mean, std = expected_best(scores, higher_is_better, method)
    boot = bootstrap(scores, higher_is_better, method, n_boot, seed)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return pd.DataFrame({"n": np.arange(1, len(mean) + 1), "expected_best": mean, "std": std, "lo": lo, "hi": hi})
