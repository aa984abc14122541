"""The KS batteries: validation, Holm, and that they can both pass and fail (fixed seeds, declared alpha)."""

import numpy as np
import pytest

from specverify.harness.stats import MIN_SAMPLES, gaussian_one_sample, holm, ks_battery, whitened_normal_battery
from specverify.harness.stats.results import TestResult

ALPHA = 1e-3  # family-wise false-failure rate of each battery below


def test_holm_matches_the_step_down_rule():
    p = [0.0004, 0.03, 0.0002, 0.5]
    b = holm([TestResult(str(i), 0.0, v, "m", 10) for i, v in enumerate(p)], alpha=0.01)
    # sorted: 0.0002*4, 0.0004*3, 0.03*2, 0.5*1 with running max
    np.testing.assert_allclose(b.adjusted, [0.0012, 0.06, 0.0008, 0.5])
    assert b.rejected == (True, False, True, False) and b.reject


def test_one_sample_battery_passes_the_truth_and_rejects_a_scale_error():
    rng = np.random.default_rng(0)
    lam = np.array([0.5, 1.0, 2.0])
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    mean = np.array([1.0, -1.0, 0.5])
    x = mean + (rng.normal(size=(20000, 3)) * np.sqrt(lam)) @ q.T
    assert not gaussian_one_sample(x, mean, lam, q, ALPHA).reject
    assert gaussian_one_sample(x, mean, lam * 1.05, q, ALPHA).reject


def test_ks_battery_passes_same_law_and_rejects_a_one_coordinate_scale_error():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5000, 8)), rng.normal(size=(5000, 8))
    assert not ks_battery(x, y, ALPHA).reject
    y[:, 0] *= 1.3  # a single-coordinate scale error
    assert ks_battery(x, y, ALPHA).reject


def test_batteries_refuse_bad_input():
    with pytest.raises(ValueError, match=f"n >= {MIN_SAMPLES}"):
        whitened_normal_battery(np.zeros((MIN_SAMPLES - 1, 2)), ALPHA)
    with pytest.raises(ValueError, match="NaN"):
        whitened_normal_battery(np.full((200, 2), np.nan), ALPHA)
    with pytest.raises(ValueError, match="2-D"):
        whitened_normal_battery(np.zeros(200), ALPHA)
    with pytest.raises(ValueError, match="dimension"):
        ks_battery(np.zeros((200, 2)), np.zeros((200, 3)), ALPHA)
    with pytest.raises(ValueError, match="alpha"):
        holm([TestResult("a", 0.0, 0.5, "m", 10)], alpha=1.5)


def test_report_fields():
    rng = np.random.default_rng(2)
    b = whitened_normal_battery(rng.normal(size=(500, 2)), 0.05)
    d = b.to_dict()
    assert len(d["tests"]) == 3
    assert {"name", "statistic", "pvalue", "adjusted_pvalue", "rejected"} <= d["tests"][0].keys()
    assert "over 3 tests" in b.summary()


def test_holm_arrays_agree_with_statsmodels(monkeypatch):
    import gc

    from statsmodels.stats.multitest import multipletests

    monkeypatch.setattr(gc, "collect", lambda *a: 0)  # statsmodels collects garbage on every Holm call

    from specverify.harness.stats.results import holm_arrays

    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 70):
        for _ in range(50):
            p = rng.uniform(size=size) ** rng.uniform(0.5, 6)
            if size > 2:
                p[:2] = p[2]  # ties
            for alpha in (0.001, 0.01, 0.05):
                rej, adj, _, _ = multipletests(p, alpha=alpha, method="holm")
                mine_adj, mine_rej = holm_arrays(p, alpha)
                assert np.array_equal(mine_rej, rej) and np.array_equal(mine_adj, adj)
