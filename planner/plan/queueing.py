"""Queueing of serving requests (docs/planning.md P19h): each replica is an M/M/c queue whose c
servers are its batch slots (the sequences it keeps in flight), fed by Poisson arrivals.

Continuous batching admits a waiting request as soon as a running sequence finishes, so a
replica with c slots and a residence time S per request (prefill + decode) behaves as c
servers of mean service time S. The M/M/c model (Erlang 1917; Kleinrock 1975, Vol. 1,
Sec. 3.5) gives the probability of waiting (Erlang C) and an exponential tail of the waiting
time: P(W > t) = C · exp(−(c/S − λ) t). Exponential service is the conservative choice for
requests of unequal length (fixed-length requests wait about half as long: the Allen–Cunneen
factor (1 + c_s²)/2). Arrays broadcast; the only loops are Erlang B's recursion (over the
servers, up to 64) and the normal tail of the large-c cells.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

# Erlang B by its recursion up to this many servers; beyond it from the Poisson distribution
# (B = pmf(c) / cdf(c), the cdf by the Wilson–Hilferty normal approximation): within 1e-4 of
# the recursion at c = 64-4,000 and loads 0.5-0.99 c (tests/test_serving.py checks it).
EXACT_SERVERS_MAX = 64


def erlang_c(servers, load):
    """P(a request waits) in an M/M/c queue with c = `servers` and an offered load of `load`
    Erlangs (arrival rate × mean service time); 1 where load ≥ servers (unstable).

    Erlang B by its recursion B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)) for small c; for
    large c as the ratio of the Poisson(a) pmf at c to its cdf (the same quantity, Erlang
    1917), the cdf from the Wilson–Hilferty approximation of P(χ²_{2(c+1)} > 2a). Then
    C = c·B / (c − a·(1 − B)). Worked number: c = 2, a = 1: B = 1/5,
    C = 2·(1/5) / (2 − 1·(4/5)) = 1/3."""
    c = np.asarray(servers, dtype=float)
    a = np.asarray(load, dtype=float)
    c, a = np.broadcast_arrays(c, a)
    b = np.zeros(c.shape)
    stable = (a < c) & (c >= 1) & (a > 0)
    small = stable & (c <= EXACT_SERVERS_MAX)
    if small.any():
        cs, as_ = c[small], a[small]
        bs = np.ones_like(as_)
        for k in range(1, int(cs.max()) + 1):
            bs = np.where(k <= cs, as_ * bs / (k + as_ * bs), bs)
        b[small] = bs
    large = stable & ~small
    if large.any():
        cl, al = c[large], a[large]
        # ln c! by Stirling's series (error under 1e-12 for c > 64)
        log_fact = (cl * np.log(cl) - cl + 0.5 * np.log(2.0 * np.pi * cl) + 1.0 / (12.0 * cl)
                    - 1.0 / (360.0 * cl**3))
        log_pmf = cl * np.log(al) - al - log_fact
        k = 2.0 * (cl + 1.0)
        z = (np.cbrt(2.0 * al / k) - (1.0 - 2.0 / (9.0 * k))) / np.sqrt(2.0 / (9.0 * k))
        cdf = 0.5 * _erfc(z / np.sqrt(2.0))
        b[large] = np.exp(log_pmf) / cdf
    with np.errstate(divide="ignore", invalid="ignore"):
        wait = c * b / (c - a * (1.0 - b))
    return np.where(a <= 0, 0.0, np.where(stable, wait, 1.0))


def _erfc(x: np.ndarray) -> np.ndarray:
    return np.array([math.erfc(v) for v in np.ravel(x)]).reshape(np.shape(x))


def mean_wait_s(*, p_wait, servers, service_s, arrival_per_s):
    """Mean waiting time of an M/M/c queue: C / (c/S − λ) (inf where unstable)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.asarray(servers, dtype=float) / service_s - arrival_per_s
        return np.where(rate > 0, p_wait / rate, np.inf)


def wait_quantile_s(*, p_wait, servers, service_s, arrival_per_s, percentile: float):
    """The `percentile`-th percentile of the waiting time of an M/M/c queue:
    P(W > t) = C·exp(−(c/S − λ)·t), so t_p = ln(C / (1 − p)) / (c/S − λ) where C > 1 − p,
    else 0 (most requests do not wait at all). Worked number: C = 0.5, c/S − λ = 2 /s,
    p = 99 %: ln(0.5 / 0.01) / 2 = 1.956 s; p = 50 %: 0 (C ≤ 0.5)."""
    tail = 1.0 - percentile / 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.asarray(servers, dtype=float) / service_s - arrival_per_s
        t = np.log(np.asarray(p_wait, dtype=float) / tail) / rate
    return np.where(rate > 0, np.where(np.asarray(p_wait) > tail, t, 0.0), np.inf)


def busy_quantile(*, load, servers, percentile: float):
    """The `percentile`-th percentile of the number of busy servers (sequences in flight):
    load + z_p·√load (the normal approximation of the Poisson number of busy servers of a
    lightly blocked M/M/c queue), at least 1 and at most c. At p = 50 %: the load."""
    z = NormalDist().inv_cdf(percentile / 100.0)
    a = np.asarray(load, dtype=float)
    return np.clip(a + z * np.sqrt(np.maximum(a, 0.0)), np.minimum(1.0, servers), servers)
