"""Transition-level exactness: the innovations of trajectories against their exact Gaussian law.

For a chain x_{k+1} = m(x_k, k) + s_k eps_k the innovations eps_{i,k} = (x_{i,k+1} - m(x_{i,k}, k)) / s_k of
exact trajectories are i.i.d. N(0, I_d), each independent of its trajectory's past; where s_k = 0,
x_{k+1} = m(x_k, k). Conversely, the right initial law and such innovations give the target chain's path law
(``theory/innovations.md``). Every statistic here is built from eps and functions of the past, so its null law
is exact and parameter-free: no permutations, no reference sample.

:class:`Innovations` reads trajectories chunk by chunk (``add``) and keeps sufficient statistics (sums per step,
per lag and per window position, capped samples for the KS tests, small sketches for duplicates), so memory is
bounded by one chunk. Its ``blocks(alpha_block)`` returns the initial-law, innovation and duplicate batteries.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
from scipy import stats

from specverify.harness.stats.results import TestResult
from specverify.harness.targets import Transition

__all__ = ["KS_CAP", "Innovations", "bonferroni_min", "min_distance_test", "trajectories_needed", "two_sided_chi2"]

KS_CAP = 200_000  # pooled values kept for a KS test (the first ones: chosen before seeing them, so still i.i.d.)
COORD_CAP, MAX_COORDS = 20_000, 64  # rows kept for the per-coordinate KS tests, and coordinates tested
SKETCH = 16  # columns of the duplicate sketches


def two_sided_chi2(total: float, df: float) -> float:
    """Two-sided p-value of ``total`` under chi2(df)."""
    return float(min(1.0, 2 * min(stats.chi2.cdf(total, df), stats.chi2.sf(total, df))))


def _normal_two_sided(z: float) -> float:
    return float(2 * stats.norm.sf(abs(z)))


def bonferroni_min(pvalues) -> float:
    """min(1, m min p): a valid p-value for "some one of m tests rejects", whatever their dependence."""
    p = np.asarray(pvalues, dtype=np.float64)
    return float(min(1.0, p.size * p.min())) if p.size else 1.0


def trajectories_needed(alpha_test: float, beta: float, delta: float, noisy_steps: int) -> int:
    """Trajectories for a two-sided z-test at ``alpha_test`` to detect, with power 1 - beta, a mean shift of
    ``delta`` innovation standard deviations along a direction computed from the past, at every noisy step."""
    z = stats.norm.isf(alpha_test / 2) + stats.norm.isf(beta)
    return int(np.ceil(z**2 / (delta**2 * max(noisy_steps, 1))))


def min_distance_test(rows: np.ndarray, name: str, what: str) -> TestResult:
    """Rows i.i.d. N(0, I_r) under H0: every pair has |r_i - r_j|^2 / 2 ~ chi2_r, so the closest pair gives
    p = min(1, pairs * F_chi2_r(min^2 / 2)) (Bonferroni over pairs; exact duplicates give p = 0)."""
    from scipy.spatial import cKDTree

    n, r = rows.shape
    if n < 2:
        return TestResult(name, float("nan"), 1.0, "fewer than 2 rows", n)
    dist, _ = cKDTree(rows).query(rows, k=2)
    closest = float(dist[:, 1].min())
    pairs = n * (n - 1) / 2
    p = float(min(1.0, pairs * stats.chi2.cdf(closest**2 / 2, r)))
    return TestResult(name, closest, p, f"closest pair of {n} {what} sketches in {r} dims: |a - b|^2 / 2 ~ chi2_{r} "
                      f"per pair, Bonferroni over {pairs:.3g} pairs", n)


def _orthonormal(d: int, r: int, seed) -> np.ndarray:
    g = np.random.default_rng(seed).standard_normal((d, r))
    return np.linalg.qr(g)[0]


class _Capped:
    """The first ``cap`` values added (chosen before they are seen, so an i.i.d. sample stays one)."""

    def __init__(self, cap: int):
        self.cap, self.parts, self.size = cap, [], 0

    def add(self, v: np.ndarray) -> None:
        take = min(self.cap - self.size, len(v))
        if take > 0:
            self.parts.append(np.array(v[:take]))
            self.size += take

    def values(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros((0,))


@dataclasses.dataclass
class _Series:
    """Sums of projections w ~ N(0, 1) per step (``total``, ``count``) and their sum of squares."""

    total: np.ndarray
    count: np.ndarray
    squares: float = 0.0

    def add(self, k: int, w: np.ndarray) -> None:
        self.total[k] += w.sum()
        self.count[k] += w.size
        self.squares += float((w**2).sum())

    def z_per_step(self) -> np.ndarray:
        return np.where(self.count > 0, self.total / np.sqrt(np.maximum(self.count, 1)), 0.0)

    def tests(self, name: str) -> list[TestResult]:
        n = int(self.count.sum())
        if n == 0:
            return []
        z = float(self.total.sum() / np.sqrt(n))
        return [TestResult(f"{name}[mean]", z, _normal_two_sided(z), f"sum of {n} projections / sqrt(n) ~ N(0, 1), "
                           "two-sided", n),
                TestResult(f"{name}[scale]", self.squares / n, two_sided_chi2(self.squares, n),
                           f"sum of {n} squared projections ~ chi2_{n}, two-sided", n)]


class _Past:
    """The last ``lags`` steps of a chunk, most recent first: the drifts g = m(x) - x, the model outputs f (None
    without a denoiser) and the unit innovations with their mask (None at a zero-noise step)."""

    def __init__(self, lags: int):
        self.g, self.f, self.e = (collections.deque(maxlen=lags) for _ in range(3))

    def push(self, g, f, e) -> None:
        self.g.appendleft(g)
        self.f.appendleft(f)
        self.e.appendleft(e)


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of v scaled to norm 1, and where that is possible (norm > 0)."""
    norm = np.sqrt((v**2).sum(1))
    ok = norm > 0
    return v / np.where(ok, norm, 1.0)[:, None], ok


class Innovations:
    """Sufficient statistics of trajectories (n, T + 1, d) against ``target``, added chunk by chunk.

    ``lags``: directions from up to this many steps back (a frozen drafter's window start is at most window + 1
    steps behind, under the default round policy); ``seed``: the sketches' random directions. The zero-noise
    tolerance is sqrt(eps) of the trajectories' dtype relative to 1 + |mean|_inf (1.5e-8 in float64, 3.5e-4 in
    float32): two independent programs of the same mean differ by rounding amplified by the mean's conditioning
    (the images denoiser's last step: 6.5e-14 between torch and JAX in float64, about 300 machine epsilons), far
    below it, and any noise a sampler adds where none belongs is far above it."""

    def __init__(self, target: Transition, *, lags: int = 9, seed: int = 0):
        T, d = target.n_steps, target.dim
        self.target, self.lags, self.T, self.d = target, int(lags), T, d
        self.noisy = np.asarray(target.sigma) > 0
        self.n = 0
        self.step_sq, self.step_sum = np.zeros(T), np.zeros((T, d))
        self.zero_dev = np.zeros(T)
        self.init_sq, self.init_sum, self.init_norms = 0.0, np.zeros(d), []
        self.init_values, self.values, self.norms = _Capped(KS_CAP), _Capped(KS_CAP), _Capped(KS_CAP)
        self.coords = _Capped(COORD_CAP)
        families = ["serial", "drift"] + (["denoiser"] if target.coefs is not None else [])
        self.series = {(f, lag): _Series(np.zeros(T), np.zeros(T)) for f in families for lag in range(1, lags + 1)}
        r = min(d, SKETCH)
        # noisy step j feeds sketch block j mod blocks; no more blocks than noisy steps, so that none stays empty
        # (an all-zero block would count as r dimensions of N(0, 1) in the closest-pair test's chi2 law)
        self.blocks = max(1, min(SKETCH // r, int(self.noisy.sum())))
        self.q0, self.q = _orthonormal(d, min(d, SKETCH), [seed, 1]), _orthonormal(d, r, [seed, 2])
        self.sketch0, self.sketch = [], []
        block_of = np.cumsum(self.noisy) - 1
        self.block_of = np.where(self.noisy, block_of % self.blocks, -1)
        self.block_count = np.bincount(self.block_of[self.noisy], minlength=self.blocks)

    def add(self, paths: np.ndarray, dtype=np.float64) -> None:
        """Add trajectories ``paths`` (m, T + 1, d), float64 values of a ``dtype`` run."""
        m = paths.shape[0]
        self._initial(paths[:, 0])
        atol = float(np.sqrt(np.finfo(dtype).eps))  # see zero_noise_tolerance
        past = _Past(self.lags)
        sketch = np.zeros((m, self.blocks, self.q.shape[1]))
        for k in range(self.T):
            x, nxt = paths[:, k], paths[:, k + 1]
            mean = self.target.mean(x, np.full(m, k))
            g = mean - x
            f = self._model_output(x, mean, k)
            if not self.noisy[k]:
                scale = 1.0 + np.abs(mean).max(1)
                self.zero_dev[k] = max(self.zero_dev[k], float((np.abs(nxt - mean).max(1) / scale).max() / atol))
                unit = None
            else:
                eps = (nxt - mean) / self.target.sigma[k]
                self._innovation(k, eps, g, f, past)
                sketch[:, self.block_of[k]] += eps @ self.q
                unit = _unit(eps)
            past.push(g, f, unit)
        self.sketch.append((sketch / np.sqrt(np.maximum(self.block_count, 1))[None, :, None]).reshape(m, -1))
        self.n += m

    def _model_output(self, x, mean, k):
        if self.target.coefs is None:
            return None
        a, b = self.target.coefs
        return (mean - a[k] * x) / b[k] if b[k] != 0 else None

    def _initial(self, x0: np.ndarray) -> None:
        z = (x0 - self.target.prior_mean) / self.target.prior_std
        sq = (z**2).sum(1)
        self.init_sq += float(sq.sum())
        self.init_sum += z.sum(0)
        self.init_norms.append(sq)
        self.init_values.add(z.ravel())
        self.sketch0.append(z @ self.q0)

    def _innovation(self, k, eps, g, f, past: _Past) -> None:
        """Fold step k's innovations ``eps`` in: its drift ``g`` and model output ``f`` against ``past``'s."""
        sq = (eps**2).sum(1)
        self.step_sq[k] += sq.sum()
        self.step_sum[k] += eps.sum(0)
        self.values.add(eps.ravel())
        self.norms.add(sq)
        self.coords.add(eps[:, :MAX_COORDS])
        for lag in range(1, len(past.g) + 1):
            self._project(("drift", lag), k, eps, past.g[lag - 1] - g)
            if f is not None and past.f[lag - 1] is not None:  # D along b_k (f_{k-lag} - f_k)
                self._project(("denoiser", lag), k, eps, np.sign(self.target.coefs[1][k]) * (past.f[lag - 1] - f))
            if past.e[lag - 1] is not None:
                unit, ok = past.e[lag - 1]
                self.series[("serial", lag)].add(k, (eps * unit).sum(1)[ok])

    def _project(self, key, k, eps, direction) -> None:
        unit, ok = _unit(direction)
        if ok.any():
            self.series[key].add(k, (eps * unit).sum(1)[ok])

    # ------------------------------------------------------------------------------------------------------
    # the tests

    def initial_tests(self) -> list[TestResult]:
        """x_0 whitened by the prior: N(0, I_d) rows."""
        n, d = self.n, self.d
        norms = np.concatenate(self.init_norms)
        mean_sq = float((self.init_sum**2).sum() / n)
        return [
            TestResult("initial[norm]", self.init_sq / (n * d), two_sided_chi2(self.init_sq, n * d),
                       f"sum of |z0|^2 ~ chi2_{n * d}, two-sided", n),
            TestResult("initial[mean]", mean_sq, float(stats.chi2.sf(mean_sq, d)),
                       f"|sum z0|^2 / n ~ chi2_{d}", n),
            _ks("initial[KS coordinates]", self.init_values.values(), stats.norm.cdf, "N(0, 1)", n),
            _ks("initial[KS |z0|^2]", norms, stats.chi2(d).cdf, f"chi2_{d}", n),
        ]

    def innovation_tests(self) -> list[TestResult]:
        """The battery on eps (and the zero-noise steps); see the module docstring."""
        n, d, noisy = self.n, self.d, self.noisy
        steps = int(noisy.sum())
        out = []
        if (~noisy).any():
            worst = float(self.zero_dev.max())
            out.append(TestResult("zero-noise steps", worst, 0.0 if worst > 1 else 1.0,
                                  "max |x_{k+1} - m(x_k, k)| / (1 + |m|_inf) over the steps with sigma = 0, in units "
                                  "of sqrt(machine epsilon) of the trajectories' dtype (exact: p = 0 above 1)", n))
        if steps == 0:
            return out
        sq, means = self.step_sq[noisy], (self.step_sum[noisy] ** 2).sum(1) / n
        out += [
            TestResult("innovations[norm, all steps]", sq.sum() / (n * d * steps),
                       two_sided_chi2(sq.sum(), n * d * steps),
                       f"sum of |eps|^2 over {steps} steps ~ chi2_{n * d * steps}, two-sided", n),
            TestResult("innovations[norm, worst step]", float(np.abs(self.z_norm()).max()),
                       bonferroni_min([two_sided_chi2(s, n * d) for s in sq]),
                       f"per step sum of |eps|^2 ~ chi2_{n * d}, two-sided, Bonferroni over {steps} steps", n),
            TestResult("innovations[mean, all steps]", means.sum() / (d * steps),
                       float(stats.chi2.sf(means.sum(), d * steps)),
                       f"sum over steps of |sum_i eps|^2 / n ~ chi2_{d * steps}", n),
            TestResult("innovations[mean, worst step]", float(means.max()), bonferroni_min(stats.chi2.sf(means, d)),
                       f"per step |sum_i eps|^2 / n ~ chi2_{d}, Bonferroni over {steps} steps", n),
            _ks("innovations[KS coordinates]", self.values.values(), stats.norm.cdf, "N(0, 1)", n),
            _ks("innovations[KS |eps|^2]", self.norms.values(), stats.chi2(d).cdf, f"chi2_{d}", n),
            self._coordinate_test(),
        ]
        for (family, lag), s in self.series.items():
            out += s.tests(f"{family}[lag {lag}]")
        return out

    def _coordinate_test(self) -> TestResult:
        rows = self.coords.values().reshape(-1, min(self.d, MAX_COORDS))
        method = _ks_method(len(rows))
        p = [stats.kstest(rows[:, j], stats.norm.cdf, method=method).pvalue for j in range(rows.shape[1])]
        j = int(np.argmin(p))
        return TestResult("innovations[KS worst coordinate]", float(j), bonferroni_min(p),
                          f"KS of each of the first {rows.shape[1]} coordinates ({len(rows)} innovations each) against "
                          f"N(0, 1), Bonferroni; statistic: the worst coordinate", self.n, coord=j)

    def duplicate_tests(self) -> list[TestResult]:
        """Trajectories that share their innovations, or their initial states (impossible under H0)."""
        if self.noisy.any():
            paths = min_distance_test(np.concatenate(self.sketch), "duplicates[innovation sequences]", "innovation")
        else:  # a noiseless chain has no innovations: its steps are checked by the zero-noise test alone
            paths = TestResult("duplicates[innovation sequences]", float("nan"), 1.0, "no noisy step", self.n)
        return [paths, min_distance_test(np.concatenate(self.sketch0), "duplicates[initial states]", "initial-state")]

    # ------------------------------------------------------------------------------------------------------
    # the diagnosis

    def z_norm(self) -> np.ndarray:
        """Per step, the standardised sum of |eps|^2 ((S - n d) / sqrt(2 n d)); 0 at zero-noise steps."""
        nd = self.n * self.d
        return np.where(self.noisy, (self.step_sq - nd) / np.sqrt(2 * nd), 0.0)

    def z_mean(self) -> np.ndarray:
        """Per step, |sum_i eps|^2 / n as a one-sided normal score of its chi2_d law; 0 at zero-noise steps."""
        q = (self.step_sum**2).sum(1) / max(self.n, 1)
        return np.where(self.noisy, stats.norm.isf(np.clip(stats.chi2.sf(q, self.d), 1e-300, 1)), 0.0)

    def diagnosis(self, threshold: float, top: int = 10) -> dict:
        """The per-step z-scores (norm, mean, and the projections of every family and lag) and the steps where
        any exceeds ``threshold`` in absolute value, worst first."""
        series = {"norm": self.z_norm(), "mean": self.z_mean()}
        series |= {f"{f}[lag {lag}]": s.z_per_step() for (f, lag), s in self.series.items()}
        rows = []
        for k in range(self.T):
            name, z = max(((nm, float(v[k])) for nm, v in series.items()), key=lambda t: abs(t[1]))
            if abs(z) > threshold:
                rows.append({"step": k, "statistic": name, "z": z})
        rows.sort(key=lambda r: -abs(r["z"]))
        return {"threshold_z": threshold, "deviating_steps": len(rows), "worst": rows[:top],
                "per_step": {nm: [round(float(v), 4) for v in z] for nm, z in series.items()}}


def _ks_method(n: int) -> str:
    return "exact" if n <= 10_000 else "asymp"  # pinned: scipy's "auto" switches silently


def _ks(name, values, cdf, law: str, n_traj: int) -> TestResult:
    r = stats.kstest(values, cdf, method=_ks_method(len(values)))
    return TestResult(name, float(r.statistic), float(r.pvalue),
                      f"one-sample KS of {len(values)} values against {law} ({_ks_method(len(values))})", n_traj)
