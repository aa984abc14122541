"""The shard engine (specverify.harness.shards, rundir): plan, pooling, determinism across executors and worker
counts, resume, a worker killed mid-shard, a shard that fails for good, signatures, atomic writes, no Ray.

Exact tests (no statistics): every assertion is an identity. One local 2-CPU Ray instance serves the module."""

import hashlib
import os
import sys

import numpy as np
import pytest

from specverify._files import atomic_bytes
from specverify.errors import ShardError, UsageError
from specverify.harness.rundir import RunDir
from specverify.harness.shards import Engine, RayOptions, pool, shard_plan, sharded

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One 2-CPU Ray instance for the module (engines find it running and leave it alone)."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import the tests
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def digest(out: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(out):
        h.update(key.encode() + np.ascontiguousarray(out[key]).tobytes())
    return h.hexdigest()


def gaussian(n, seed):
    """A cheap candidate with acceptance counts (numpy only: a worker that runs it needs no torch)."""
    x = np.random.default_rng(seed).standard_normal((n, 3))
    return {"samples": x, "accepted": np.ones(n), "predicted": np.full(n, 0.5),
            "accepted_per_position": np.array([n, 0.0]), "verified_per_position": np.array([n, n]),
            "predicted_per_position": np.array([0.25 * n, 0.25 * n])}


def torch_gaussian(n, seed):
    """A candidate with torch reductions in it (a matmul, a sum), whose results could depend on thread counts."""
    import torch

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 64, generator=g, dtype=torch.float32)
    x = z @ torch.linspace(0.5, 1.5, 64 * 64).reshape(64, 64)
    return torch.cat([x[:, :2], x.sum(1, keepdim=True)], 1)


class DiesOnce:
    """Kills its worker process (os._exit) on the first attempt at shard size ``size``; then runs."""

    def __init__(self, marker, size):
        self.marker, self.size = str(marker), size

    def __call__(self, n, seed):
        if n == self.size and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return gaussian(n, seed)


def always_dies(n, seed):
    os._exit(1)


def raises_on(size):
    def candidate(n, seed):
        if n == size:
            raise ValueError("bad shard")
        return gaussian(n, seed)

    return candidate


def test_plan_sizes_and_seeds():
    plan = shard_plan(1003, 7, 10)
    assert [s.size for s in plan] == [101, 101, 101] + [100] * 7 and [s.index for s in plan] == list(range(10))
    many = [s.seed for s in shard_plan(10_000, 7, 10_000)]
    assert len(set(many)) == 10_000 and 0 <= min(many) and max(many) < 2**31  # no shard reuses a seed
    assert [s.seed for s in shard_plan(50, 7, 5)] == [s.seed for s in shard_plan(80, 7, 8)][:5]  # (seed, index)
    assert shard_plan(3, 0, 8) == shard_plan(3, 0, 3)  # never an empty shard
    assert shard_plan(100, 1, 4) != shard_plan(100, 2, 4)


def test_pool_stacks_trajectories_and_sums_totals():
    a, b = gaussian(3, 0), gaussian(2, 1)
    p = pool([a, b])
    assert p["samples"].shape == (5, 3) and p["accepted"].shape == (5,)
    assert np.array_equal(p["verified_per_position"], [5, 5])


def test_same_result_here_and_on_one_or_two_workers(local_ray):
    outs = [sharded(torch_gaussian, Engine(shards=5, ray=RayOptions(workers=w)), dim=3)(203, 11)
            for w in (None, 1, 2)]
    assert len({digest(o) for o in outs}) == 1
    assert outs[0]["samples"].shape == (203, 3)


def test_a_killed_worker_is_retried(local_ray, tmp_path):
    eng = Engine(shards=4, ray=RayOptions(workers=2))
    out = sharded(DiesOnce(tmp_path / "died", 25), eng, dim=3)(100, 3)
    assert (tmp_path / "died").exists(), "the worker was not killed"
    assert eng.status["calls"]["candidate-n100-seed3"]["retried"] >= 1
    assert digest(out) == digest(sharded(gaussian, Engine(shards=4), dim=3)(100, 3))


def test_a_worker_that_keeps_dying_fails_after_its_retries(local_ray):
    with pytest.raises(ShardError, match=r"shard 0 of 1 .*failed: its worker died 2 times \(Ray retried it 1 times\)"):
        sharded(always_dies, Engine(shards=1, ray=RayOptions(workers=2, retries=1)), dim=3)(10, 0)


def test_resume_computes_only_missing_shards(local_ray, tmp_path):
    sig = {"candidate": "gaussian", "n": 90}
    eng = Engine(shards=3, ray=RayOptions(workers=2), run_dir=RunDir(tmp_path, sig))
    first = sharded(gaussian, eng, dim=3)(90, 5)
    call = tmp_path / "candidate-n90-seed5"
    assert sorted(p.name for p in call.iterdir()) == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    (call / "shard-00001.npz").unlink()  # as if the driver died before shard 1 arrived
    eng = Engine(shards=3, ray=RayOptions(workers=2), run_dir=RunDir(tmp_path, sig, resume=True))
    again = sharded(gaussian, eng, dim=3)(90, 5)
    assert eng.status["calls"]["candidate-n90-seed5"] == {"planned": 3, "reused": 2, "computed": 1, "retried": 0,
                                                         "failed": {}}
    assert digest(first) == digest(again)


def test_a_repeated_call_is_recomputed_not_read_back(tmp_path):
    calls = []

    def counting(n, seed):
        calls.append(seed)
        return gaussian(n, seed)

    f = sharded(counting, Engine(shards=2, run_dir=RunDir(tmp_path, {})), dim=3)
    f(8, 0), f(8, 0)
    assert len(calls) == 4  # the seed check's second call really runs


def test_a_shard_that_raises_fails_for_good_and_keeps_the_others(local_ray, tmp_path):
    eng = Engine(shards=4, ray=RayOptions(workers=2), run_dir=RunDir(tmp_path, {}))
    with pytest.raises(ShardError, match=r"shard 3 of 4 .*size 24.*raised ValueError: bad shard.*3 finished shards "
                                         r"are kept"):
        sharded(raises_on(24), eng, dim=3)(99, 0)
    assert eng.status["failed"]["shard"] == 3 and "bad shard" in eng.status["failed"]["error"]
    assert RunDir(tmp_path, {}, resume=True).done("candidate-n99-seed0") == [0, 1, 2]


def test_signature_mismatch_and_existing_run_are_refused(tmp_path):
    RunDir(tmp_path, {"n": 100, "versions": {"numpy": "2.0"}})
    with pytest.raises(UsageError, match="already holds a run; pass --resume"):
        RunDir(tmp_path, {"n": 100, "versions": {"numpy": "2.0"}})
    with pytest.raises(UsageError, match=r"different run \(n: 100 -> 200; versions.numpy: '2.0' -> '2.1'\)"):
        RunDir(tmp_path, {"n": 200, "versions": {"numpy": "2.1"}}, resume=True)
    RunDir(tmp_path, {"n": 100, "versions": {"numpy": "2.0"}}, resume=True)


def test_a_shard_file_from_another_plan_is_refused(tmp_path):
    rd = RunDir(tmp_path, {})
    rd.save("c", 0, 10, 123, {"samples": np.zeros((10, 2))})
    assert rd.load("c", 0, 10, 123)["samples"].shape == (10, 2)
    with pytest.raises(UsageError, match="not the planned"):
        rd.load("c", 0, 10, 124)


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = atomic_bytes(tmp_path / "f", b"old")
    with pytest.raises(TypeError):
        atomic_bytes(path, "not bytes")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f"]


def test_without_ray_workers_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(UsageError, match=r"--workers runs shards on Ray, which is not installed: pip install "
                                         r"'specverify\[ray\]'"):
        Engine(shards=2, ray=RayOptions(workers=2))
    Engine(shards=2)  # sharding in this process needs no Ray
