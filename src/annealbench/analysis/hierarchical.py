"""The hierarchical Bayesian model of Benavoli et al. (2017) / Corani et al. (2017), by Gibbs sampling.

Across tasks with the seeds: for task i and seed j, the paired difference in units of the task's
margin is x_ij (so the ROPE is ±1 on every task). Seeds are independent runs, so the
correlation term of the cross-validation version is 0:

    x_ij | δ_i, σ_i ~ N(δ_i, σ_i²)           σ_i ~ U(0, S)
    δ_i | δ₀, σ₀, ν ~ t_ν(δ₀, σ₀)             δ₀ ~ U(−M, M),  σ₀ ~ U(0, S₀)
    ν = 1 + m,  m ~ Gamma(a, b)               a ~ U(1, 2),  b ~ U(0.01, 0.1)

which are baycomp's `HierarchicalTest` priors (its Stan model `hierarchical-t-test.stan` puts the
Gamma prior on ν − 1, `nuMinusOne`, so ν > 1) with M = max|x|, S = S₀ = 1000·sd.
The Student t is sampled as a scale mixture, δ_i | λ_i ~ N(δ₀, σ₀²/λ_i), λ_i ~ Gamma(ν/2, ν/2),
so every conditional but those of ν, a, b is conjugate (ν, a, b: random-walk Metropolis on the
log scale). For each posterior draw, a new task's δ ~ t_ν(δ₀, σ₀) puts probability p_left on
δ < −1, p_rope on |δ| ≤ 1 and p_right on δ > 1. Averaged over the draws these are the posterior
predictive probabilities that a new task's difference falls below, inside or above the margin —
the numbers `predictive` returns and the report prints. (baycomp reports instead the fractions of
draws in which each region is the most probable, a statement about the posterior of the mean
task, not about a new task; `probabilities` keeps that number for comparison.)

Several chains start from dispersed points; `predictive` reports the split-R̂ and the bulk
effective sample size of δ₀ and of the predictive probability of the ROPE (Vehtari, Gelman,
Simpson, Carpenter & Bürkner 2021, without the rank normalisation; written out here because
arviz is not a dependency of the suite).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

DRAWS = 4000  # kept draws, over all chains
BURN_IN = 1000  # per chain
CHAINS = 4
UPPER_SIGMA = 1000.0  # baycomp's upper_sigma, in units of the mean within-task sd


@dataclass
class _State:
    delta: np.ndarray  # (q,)
    sigma2: np.ndarray  # (q,)
    lam: np.ndarray  # (q,)
    delta0: float
    sigma02: float
    nu: float  # ν = 1 + m, m ~ Gamma(a, b)
    a: float
    b: float


def _inv_gamma_truncated(rng, shape: float, scale: float, upper: float) -> float:
    """A draw of σ² ~ InvGamma(shape, scale) restricted to σ² < upper (the uniform prior's cap)."""
    for _ in range(100):
        x = scale / rng.gamma(shape) if shape > 0 else upper * rng.uniform()
        if x < upper:
            return float(x)
    return float(upper * rng.uniform())


def _log_gamma_pdf(x, shape: float, rate: float) -> float:
    """Σ log Gamma(x; shape, rate) (math, not scipy: this runs thousands of times per comparison)."""
    x = np.asarray(x, float)
    return float(x.size * (shape * math.log(rate) - math.lgamma(shape))
                 + (shape - 1) * np.sum(np.log(x)) - rate * np.sum(x))


def _accept(rng, log_ratio: float) -> bool:
    return math.log(rng.uniform()) < log_ratio


def _step_hyper(rng, st: _State) -> None:
    """Metropolis steps for m = ν − 1 (given λ, a, b), then a and b (given ν)."""
    def log_m(m: float) -> float:  # + log m: the Jacobian of the log-scale walk
        nu = 1.0 + m
        return _log_gamma_pdf(st.lam, nu / 2, nu / 2) + _log_gamma_pdf(m, st.a, st.b) + math.log(m)
    m_old = st.nu - 1.0
    proposal = m_old * math.exp(0.3 * rng.normal())
    if _accept(rng, log_m(proposal) - log_m(m_old)):
        st.nu = 1.0 + proposal
    m = st.nu - 1.0
    a_new = st.a + 0.2 * rng.normal()
    if 1 < a_new < 2 and _accept(rng, _log_gamma_pdf(m, a_new, st.b) - _log_gamma_pdf(m, st.a, st.b)):
        st.a = a_new
    b_new = st.b + 0.01 * rng.normal()
    if 0.01 < b_new < 0.1 and _accept(rng, _log_gamma_pdf(m, st.a, b_new) - _log_gamma_pdf(m, st.a, st.b)):
        st.b = b_new


def _normal_truncated(rng, mean: float, sd: float, bound: float) -> float:
    """A draw of N(mean, sd²) restricted to (−bound, bound), by rejection (the flat prior's range)."""
    for _ in range(100):
        x = mean + sd * rng.normal()
        if -bound < x < bound:
            return float(x)
    return float(np.clip(mean, -bound, bound))


def _sweep(rng, st: _State, sums: np.ndarray, counts: np.ndarray, x: list[np.ndarray], bound: float,
           s2_max: float, s2_min: float) -> None:
    prec = counts / st.sigma2 + st.lam / st.sigma02
    mean = (sums / st.sigma2 + st.lam * st.delta0 / st.sigma02) / prec
    st.delta = mean + rng.normal(size=mean.size) / np.sqrt(prec)
    scale = np.array([np.sum((xi - d) ** 2) for xi, d in zip(x, st.delta)]) / 2
    st.sigma2 = scale / rng.gamma((counts - 1) / 2)
    for i in np.nonzero(st.sigma2 >= s2_max)[0]:  # rare: redraw under the uniform prior's cap
        st.sigma2[i] = _inv_gamma_truncated(rng, (counts[i] - 1) / 2, scale[i], s2_max)
    np.maximum(st.sigma2, s2_min, out=st.sigma2)  # a task whose seeds agree exactly: σ_i² > 0
    dev2 = (st.delta - st.delta0) ** 2
    st.lam = rng.gamma((st.nu + 1) / 2, 2.0 / (st.nu + dev2 / st.sigma02))
    w = float(st.lam.sum())
    m0, sd0 = float(np.dot(st.lam, st.delta)) / w, math.sqrt(st.sigma02 / w)
    st.delta0 = _normal_truncated(rng, m0, sd0, bound)
    st.sigma02 = _inv_gamma_truncated(rng, (st.lam.size - 1) / 2,
                                      float(np.dot(st.lam, (st.delta - st.delta0) ** 2)) / 2, s2_max)
    _step_hyper(rng, st)


def _check(x: list[np.ndarray]) -> list[np.ndarray]:
    x = [np.asarray(xi, float) for xi in x]
    if len(x) < 2 or any(xi.size < 2 or not np.isfinite(xi).all() for xi in x):
        raise ValueError(f"the hierarchical model needs ≥ 2 tasks with ≥ 2 finite differences each; "
                         f"got sizes {[xi.size for xi in x]}")
    return x


def _chain(x: list[np.ndarray], draws: int, burn_in: int, rng: np.random.Generator, start: int) -> np.ndarray:
    """(draws, 3) draws of (δ₀, σ₀, ν) of one chain; `start` picks a dispersed starting point."""
    sd = float(np.mean([xi.std(ddof=1) for xi in x])) or float(np.max(np.abs(np.concatenate(x)))) or 1.0
    bound = max(float(np.max(np.abs(np.concatenate(x)))), sd)
    s2_max = (UPPER_SIGMA * sd) ** 2
    means = np.array([xi.mean() for xi in x])
    spread = float(max(means.std(), sd / math.sqrt(min(xi.size for xi in x))))
    offset = (-1.0, 1.0, -0.5, 0.5)[start % 4] * 2 * spread if start else 0.0
    st = _State(delta=means.copy(), sigma2=np.array([max(xi.var(ddof=1), 1e-12 * sd ** 2) for xi in x]),
                lam=np.ones(len(x)), delta0=float(np.clip(means.mean() + offset, -bound, bound)),
                sigma02=float(max(means.var(), sd ** 2 / 100)) * (4.0 if start % 2 else 1.0),
                nu=(10.0, 2.0, 50.0, 5.0)[start % 4], a=1.5, b=0.055)
    sums, counts = np.array([xi.sum() for xi in x]), np.array([xi.size for xi in x], float)
    out = np.empty((draws, 3))
    for t in range(burn_in + draws):
        _sweep(rng, st, sums, counts, x, bound, s2_max, s2_max * 1e-24)
        if t >= burn_in:
            out[t - burn_in] = st.delta0, math.sqrt(st.sigma02), st.nu
    return out


def sample_chains(x: list[np.ndarray], draws: int = DRAWS, burn_in: int = BURN_IN, chains: int = CHAINS,
                  seed: int = 0) -> np.ndarray:
    """(chains, draws // chains, 3) posterior draws of (δ₀, σ₀, ν), one independent chain per row."""
    x = _check(x)
    if chains < 1 or draws < chains:
        raise ValueError(f"need chains ≥ 1 and draws ≥ chains, got chains={chains}, draws={draws}")
    rngs = np.random.default_rng(seed).spawn(chains)
    return np.stack([_chain(x, draws // chains, burn_in, rng, c) for c, rng in enumerate(rngs)])


def sample(x: list[np.ndarray], draws: int = DRAWS, burn_in: int = BURN_IN, seed: int = 0,
           chains: int = CHAINS) -> np.ndarray:
    """(draws, 3) posterior draws of (δ₀, σ₀, ν) for per-task difference arrays `x` (≥ 2 each),
    the chains pooled."""
    return sample_chains(x, draws, burn_in, chains, seed).reshape(-1, 3)


def split_rhat(chains: np.ndarray) -> float:
    """Split-R̂ of a (chains, draws) array: each chain cut in two halves, then Gelman–Rubin."""
    c = np.asarray(chains, float)
    half = c.shape[1] // 2
    if half < 2:
        return math.nan
    parts = np.concatenate([c[:, :half], c[:, half:2 * half]])
    within = float(parts.var(axis=1, ddof=1).mean())
    between = half * float(parts.mean(axis=1).var(ddof=1))
    if within == 0.0:
        return 1.0 if between == 0.0 else math.inf
    return math.sqrt(((half - 1) / half * within + between / half) / within)


def effective_size(chains: np.ndarray) -> float:
    """Bulk effective sample size of a (chains, draws) array: the autocorrelations of the split
    chains combined as in Stan, summed over Geyer's initial positive sequence of pairs."""
    c = np.asarray(chains, float)
    half = c.shape[1] // 2
    parts = np.concatenate([c[:, :half], c[:, half:2 * half]])
    m, n = parts.shape
    if n < 4:
        return math.nan
    centred = parts - parts.mean(axis=1, keepdims=True)
    size = 1 << int(math.ceil(math.log2(2 * n)))
    f = np.fft.rfft(centred, size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), size, axis=1)[:, :n] / n
    within = float((acov[:, 0] * n / (n - 1)).mean())
    var_plus = within * (n - 1) / n + (float(parts.mean(axis=1).var(ddof=1)) if m > 1 else 0.0)
    if var_plus == 0.0:
        return float(m * n)
    rho = 1.0 - (within - acov.mean(axis=0)) / var_plus
    total, prev = 0.0, math.inf
    for t in range(0, n - 1, 2):
        pair = rho[t] + rho[t + 1]
        if pair < 0:
            break
        pair = min(pair, prev)  # initial monotone sequence
        total, prev = total + pair, pair
    tau = max(-1.0 + 2.0 * total, 1.0 / math.log10(m * n))
    return float(m * n / tau)


@dataclass(frozen=True)
class Predictive:
    """What the hierarchical model says about a new task's difference δ, in margins."""

    below: float  # posterior predictive P(δ < −rope)
    within: float  # P(|δ| ≤ rope)
    above: float  # P(δ > rope)
    mean_within: float  # share of draws in which |δ| ≤ rope is the most probable region (baycomp's)
    rhat: float  # max split-R̂ over δ₀ and the predictive probability of the ROPE
    ess: float  # min bulk effective sample size over the same
    chains: int
    draws: int  # kept draws over all chains


def _regions(post: np.ndarray, rope: float) -> np.ndarray:
    """(…, 3) per draw: P(δ < −rope), P(|δ| ≤ rope), P(δ > rope) for δ ~ t_ν(δ₀, σ₀)."""
    dist = stats.t(df=post[..., 2], loc=post[..., 0], scale=post[..., 1])
    left, right = dist.cdf(-rope), dist.sf(rope)
    return np.stack([left, 1.0 - left - right, right], axis=-1)


def predictive(x: list[np.ndarray], rope: float = 1.0, seed: int = 0, draws: int = DRAWS,
               chains: int = CHAINS, burn_in: int = BURN_IN) -> Predictive:
    """The posterior predictive probabilities for a new task, with convergence diagnostics."""
    post = sample_chains(x, draws, burn_in, chains, seed)
    regions = _regions(post, rope)
    p = regions.reshape(-1, 3).mean(axis=0)
    most = np.bincount(np.argmax(regions.reshape(-1, 3), axis=1), minlength=3) / regions[..., 0].size
    rhat = max(split_rhat(post[..., 0]), split_rhat(regions[..., 1]))
    ess = min(effective_size(post[..., 0]), effective_size(regions[..., 1]))
    return Predictive(float(p[0]), float(p[1]), float(p[2]), float(most[1]), float(rhat), float(ess),
                      chains, int(post[..., 0].size))


def probabilities(x: list[np.ndarray], rope: float = 1.0, seed: int = 0,
                  draws: int = DRAWS) -> tuple[float, float, float]:
    """(P(left), P(rope), P(right)) as baycomp reports them: the fractions of posterior draws in
    which a new task's difference is most probably below −rope, inside ±rope, or above +rope
    (a statement about the mean task; `predictive` gives the probabilities for a new task)."""
    post = sample(x, draws=draws, burn_in=min(BURN_IN, draws), seed=seed)
    regions = _regions(post, rope)
    counts = np.bincount(np.argmax(regions, axis=1), minlength=3) / len(post)
    return float(counts[0]), float(counts[1]), float(counts[2])
