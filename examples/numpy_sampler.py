"""A third-party speculative sampler written in plain numpy, to be checked by specverify.

It knows nothing of specverify's internals: it receives a problem's diffusers-style view (``view.eps_model(x, t)``,
``view.betas``, ``view.timesteps``) and runs DDPM with the posterior variance, plainly or speculatively with a
frozen-epsilon drafter (the target's prediction at the window start, frozen for ``WINDOW`` steps). Each contract
has its entry point here:

    chain level  plain(view, n, seed), speculative(view, n, seed), speculative_no_reflection(view, n, seed)
                 (each returns its committed "trajectories" (n, T + 1, d), judged transition by transition)
    kernel level coupling(mean_p, mean_q, sigma, z, u)
    black box    candidate(n, seed) and reference(n, seed): the chain-level samplers on a fixed problem

    specverify check --problem gmm --dim 2 --steps 100 --candidate examples/numpy_sampler.py:speculative
    specverify check --candidate examples/numpy_sampler.py:coupling
    specverify check --candidate examples/numpy_sampler.py:candidate --reference examples/numpy_sampler.py:reference
"""

import numpy as np
from scipy.special import erfc

WINDOW = 8


def coupling(mean_p, mean_q, sigma, z, u, reflect=True):
    """Reflection maximal coupling of N(mean_p, s^2 I) and the draft mean_q + s z; rows are samples."""
    s = np.asarray(sigma, dtype=float)[:, None]
    d = (mean_q - mean_p) / s
    dist = np.linalg.norm(d, axis=1)
    accepted = np.log(u) <= -(z * d).sum(1) - 0.5 * dist**2
    e = d / np.where(dist > 0, dist, 1.0)[:, None]
    rejected = mean_p + s * (z - 2 * (z * e).sum(1, keepdims=True) * e) if reflect else mean_q + s * z
    return np.where(accepted[:, None], mean_q + s * z, rejected), accepted


class _DDPM:
    def __init__(self, view):
        import torch

        self._torch, self.model = torch, view.eps_model
        self.betas = np.asarray(view.betas, dtype=float)
        self.abar = np.cumprod(1 - self.betas)
        self.t = np.asarray(view.timesteps, dtype=int)  # chain step k runs the model at time t[k]
        prev = np.append(self.abar[self.t[1:]], 1.0)
        self.sigma = np.sqrt(self.betas[self.t] * (1 - prev) / (1 - self.abar[self.t]))
        self.sigma[-1] = 0.0  # the last step returns the mean

    def eps(self, x, k):
        t = self._torch.as_tensor(self.t[k])
        return self.model(self._torch.as_tensor(x), t).detach().numpy()

    def mean(self, x, k, eps):
        b, ab = self.betas[self.t[k]], self.abar[self.t[k]]
        return (x - (b / np.sqrt(1 - ab))[:, None] * eps) / np.sqrt(1 - b)[:, None]


def plain(view, n, seed):
    """Plain DDPM: one model call per step."""
    m, rng = _DDPM(view), np.random.default_rng(seed)
    x = rng.normal(size=(n, view.shape[0]))
    path = [x]
    for k in range(len(m.t)):
        kk = np.full(n, k)
        x = m.mean(x, kk, m.eps(x, kk)) + m.sigma[k] * rng.normal(size=x.shape)
        path.append(x)
    return {"trajectories": np.stack(path, 1)}


def speculative(view, n, seed, reflect=True):
    """Speculative DDPM with a frozen-epsilon drafter; returns samples and per-trajectory acceptance counts."""
    m, rng = _DDPM(view), np.random.default_rng(seed)
    T, d = len(m.t), view.shape[0]
    x, k = rng.normal(size=(n, d)), np.zeros(n, dtype=int)
    path = np.empty((n, T + 1, d))  # the committed states: path[:, k] after k steps
    path[:, 0] = x
    accepted, verified, predicted = np.zeros(n), np.zeros(n), np.zeros(n)
    while (live := np.flatnonzero(k < T)).size:
        xl, kl = x[live], k[live]
        eps0 = m.eps(xl, kl)  # the target at the window start, frozen for the whole window
        span = np.minimum(WINDOW, T - 1 - kl)  # never draft the last (noiseless) step
        last = span == 0
        if last.any():
            i = live[last]
            x[i], k[i] = m.mean(xl[last], kl[last], eps0[last]), T
            path[i, T] = x[i]
        rows = np.flatnonzero(~last)
        if rows.size == 0:
            continue
        ids, kr, sp, L = live[rows], kl[rows], span[rows], span[rows].max()
        ys, mq, zs = [xl[rows]], [], []
        for j in range(L):
            kj = np.minimum(kr + j, T - 2)  # padded positions (j >= span) reuse a noisy step
            mq.append(m.mean(ys[-1], kj, eps0[rows]))
            zs.append(rng.normal(size=(rows.size, d)))
            ys.append(mq[-1] + m.sigma[kj][:, None] * zs[-1])
        # one batched target call on every drafted state of every window
        ky = np.minimum(kr[:, None] + np.arange(1, L), T - 2)
        eps_y = m.eps(np.concatenate(ys[1:L]), ky.T.ravel()).reshape(L - 1, rows.size, d) if L > 1 else []
        done = np.zeros(rows.size, dtype=bool)
        for j in range(L):
            kj = np.minimum(kr + j, T - 2)  # padded positions (j >= span) reuse a noisy step
            mp = m.mean(ys[j], kj, eps0[rows] if j == 0 else eps_y[j - 1])
            s = m.sigma[kj]
            out, acc = coupling(mp, mq[j], s, zs[j], rng.uniform(size=rows.size), reflect)
            act = ~done & (j < sp)
            dist = np.linalg.norm((mq[j] - mp) / s[:, None], axis=1)
            verified[ids[act]] += 1
            predicted[ids[act]] += erfc(dist[act] / (2 * np.sqrt(2)))  # 2 Phi(-|D|/2)
            accepted[ids[act & acc]] += 1
            rej = act & ~acc
            x[ids[rej]], k[ids[rej]] = out[rej], kr[rej] + j + 1
            path[ids[rej], kr[rej] + j + 1] = out[rej]
            path[ids[act & acc], kr[act & acc] + j + 1] = ys[j + 1][act & acc]  # an accepted draft is committed
            done |= rej
        full = ~done
        x[ids[full]] = np.stack(ys, 1)[full, sp[full]]
        k[ids[full]] = kr[full] + sp[full]
    return {"trajectories": path, "samples": x, "accepted": accepted, "predicted": predicted, "verified": verified}


def speculative_no_reflection(view, n, seed):
    """The same sampler with a planted bug: a rejected step keeps its draft."""
    return speculative(view, n, seed, reflect=False)


def _gmm_view():
    from specverify.sampler.problems import make_problem

    return make_problem("gmm", dim=2).third_party(100)


def candidate(n, seed):
    """Black box: the speculative sampler on the gmm problem (d = 2, 100 steps)."""
    return speculative(_gmm_view(), n, seed)


def reference(n, seed):
    """Black box: the plain sampler on the same problem."""
    return plain(_gmm_view(), n, seed)
