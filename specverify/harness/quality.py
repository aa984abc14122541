"""Sample quality against held-out data: kernel MMD, a classifier-based Frechet distance, classifier confidence.

These figures rank models (how close samples are to the data); they are not exactness checks (whether two samplers
have one law), which are the suite's job. Samplers are black boxes here: every function takes sample arrays.

- :func:`frechet`: the Frechet distance between Gaussian fits of two feature sets (the FID formula, on any
  features). On nonlinear features such as a classifier's class probabilities it compares more than two moments
  of the pixels; on linear features (logits) a Gaussian fit of the data would be matched by construction.
- :func:`sample_quality`: for ``samples`` against ``test``, with the training data as the floor (a model as good as
  the data) and a Gaussian fit of the training data as a baseline to beat: specverify's MMD test (statistic and
  permutation p-value), the Frechet distance of the classifier's class probabilities, the classifier's mean
  top-class probability and the number of classes among its predicted labels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["N_PERM", "fit_classifier", "frechet", "sample_quality"]

N_PERM = 200  # permutations of the MMD test in sample_quality


def _flat(x) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(len(x), -1)


def frechet(a, b) -> float:
    """Frechet distance between Gaussian fits of two feature sets (n, k). The trace of sqrt(Ca Cb) is taken from the
    eigenvalues of the symmetric Ca^(1/2) Cb Ca^(1/2), which is stable for singular covariances (class
    probabilities sum to 1)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a.T), np.cov(b.T)
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cb @ root_a), 0, None)).sum()
    return float(((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_root)


def fit_classifier(x, labels):
    """A logistic-regression classifier (scikit-learn, deterministic) of flattened ``x`` on ``labels``."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5000).fit(_flat(x), np.asarray(labels))


def sample_quality(samples, *, train, test, classifier, seed: int = 0, n_perm: int = N_PERM) -> dict:
    """Quality figures of ``samples`` against ``test`` (arrays of one shape per item, flattened here), with the
    floor (``len(test)`` training items) and the baseline (a Gaussian fit of ``train``), seeded by ``seed``.

    Returns ``{"n_heldout", "model", "train_floor", "gaussian_baseline"}``, each of the last three a dict of
    ``mmd_statistic``, ``mmd_pvalue``, ``frechet_proba``, ``classifier_confidence`` and ``classes``. At most the
    first ``len(test)`` samples are used; ``classifier`` has ``predict_proba`` (see :func:`fit_classifier`)."""
    from specverify.harness.stats.mmd import Permutations, mmd_test

    train, test = _flat(train), _flat(test)
    rng = np.random.default_rng(seed)
    m = len(test)
    test_proba = classifier.predict_proba(test)
    out = {"n_heldout": m}
    for name, x in [("model", _flat(samples)[:m]), ("train_floor", train[rng.choice(len(train), m, replace=False)]),
                    ("gaussian_baseline", rng.multivariate_normal(train.mean(0), np.cov(train.T), size=m))]:
        res = mmd_test(x, test, Permutations(n_perm, seed=seed))
        proba = classifier.predict_proba(x)
        out[name] = {"mmd_statistic": res.statistic, "mmd_pvalue": res.pvalue,
                     "frechet_proba": frechet(proba, test_proba),
                     "classifier_confidence": float(proba.max(1).mean()),
                     "classes": int(len(np.unique(proba.argmax(1))))}
    return out
