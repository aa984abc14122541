"""The multi-draft kernel contract (``specverify.harness.multidraft_check``) on our D-GRS coupling and on broken
ones: the check passes the exact rule and fails each bug (alpha = 0.01, the check's own; fixed seeds)."""

import functools

import pytest
import torch

from specverify.errors import ContractError
from specverify.harness.multidraft_check import check_multidraft
from specverify.sampler.mutants import _sorted_select
from specverify.sampler.verifiers import dgrs_coupling


def test_our_dgrs_coupling_passes():
    r = check_multidraft(dgrs_coupling, rule="dgrs", n=20000, seed=0)
    assert r.verdict == "pass" and r.exact_ok and r.form == "multidraft"


def _keep_first(mean_p, means_q, sigma, z, u):
    """No residual: after K rejections it returns the first draft (index -1, so the exact part cannot see it)."""
    x, index = dgrs_coupling(mean_p, means_q, sigma, z, u)
    first = means_q[:, 0] + sigma[:, None] * z[:, 0]
    return torch.where((index < 0)[:, None], first, x), index


def _wrong_index(mean_p, means_q, sigma, z, u):
    x, index = dgrs_coupling(mean_p, means_q, sigma, z, u)
    return x, torch.where(index >= 0, (index + 1) % means_q.shape[1], index)


@pytest.mark.parametrize("bad", [functools.partial(dgrs_coupling, select=_sorted_select), _keep_first])
def test_broken_couplings_fail_statistically(bad):
    r = check_multidraft(bad, rule="dgrs", n=20000, seed=0)
    assert r.verdict == "fail" and r.exact_ok and any(t.rejected for t in r.tests)


def test_a_mislabelled_draft_fails_exactly():
    r = check_multidraft(_wrong_index, n=2000, seed=0)
    assert r.verdict == "fail" and not r.exact_ok


def test_broken_contracts_are_errors():
    with pytest.raises(ContractError, match="indices outside"):
        check_multidraft(lambda mp, mq, s, z, u: (mp, torch.full((mp.shape[0],), 9)), n=100)
    with pytest.raises(ContractError, match="shape"):
        check_multidraft(lambda mp, mq, s, z, u: (mp[:, :0], torch.zeros(mp.shape[0])), n=100)
    with pytest.raises(ContractError, match="rule"):
        check_multidraft(dgrs_coupling, rule="paws")


def test_cli(tmp_path, capsys):
    from specverify.cli import main

    f = tmp_path / "mine.py"
    f.write_text("from specverify.sampler.verifiers import dgrs_coupling as good\n")
    assert main(["check", "--candidate", f"{f}:good", "--contract", "multidraft", "--verifier", "dgrs",
                 "--n", "4000", "--json", str(tmp_path / "r.json")]) == 0
    assert '"form": "multidraft"' in (tmp_path / "r.json").read_text()
    assert main(["sample", "--steps", "10", "--n", "5", "--drafts", "2"]) == 2
    assert "needs --verifier dgrs" in capsys.readouterr().err


@pytest.mark.parametrize("verifier,drafts", [("block", "1"), ("dgrs", "3")])
def test_cli_sample_and_accept(tmp_path, verifier, drafts):
    import json

    from specverify.cli import main

    out = tmp_path / "s.json"
    assert main(["sample", "--steps", "20", "--n", "40", "--verifier", verifier, "--drafts", drafts,
                 "--json", str(out)]) == 0
    stats = json.loads(out.read_text())
    assert (stats["verifier"], stats["drafts"]) == (verifier, int(drafts))
    assert main(["accept", "--steps", "20", "--n", "40", "--windows", "4", "--drafters", "frozen-denoiser",
                 "--policies", "accepted+1", "--verifier", verifier, "--drafts", drafts,
                 "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert (row["verifier"], row["drafts"]) == (verifier, int(drafts))


def test_multidraft_script_smoke(tmp_path):
    """paper_repro/multidraft.py in a small mode: every table is written, every node row inside its interval."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "paper_repro" / "multidraft.py"
    spec = importlib.util.spec_from_file_location("multidraft", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    js, md = tmp_path / "m.json", tmp_path / "m.md"
    assert mod.main(["--problems", "gmm", "--windows", "4", "--n", "50", "--node-n", "20000", "--drafts", "2",
                     "--verifiers", "reflection,block,rank",
                     "--repeats", "1", "--wall-batch", "2", "--latency-ms", "1", "--json", str(js),
                     "--markdown", str(md)]) == 0
    res = json.loads(js.read_text())
    assert len(res["node"]) == 16 and len(res["runs"]) == 3 and len(res["wall"]["rows"]) == 4
    assert {r["rule"] for r in res["node"]} == {"rank"}
    assert sum(not r["inside"] for r in res["node"]) <= 1  # 16 intervals at 99%: one miss is plausible, two rare
    assert "SIMULATED" in md.read_text()
    assert mod.main(["--problems", "nope"]) == 2


def test_results_section_gains_are_against_reflection_at_the_same_steps():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "paper_repro" / "multidraft.py"
    spec = importlib.util.spec_from_file_location("multidraft", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def row(steps, verifier, nfe):
        return {"problem": "images", "steps": steps, "drafter": "d", "verifier": verifier, "drafts": 1, "window": 8,
                "rows_per_round": 9.0, "nfe_ratio": nfe, "predicted_nfe_ratio": nfe}

    runs = [row(250, "reflection", 1.5), row(1000, "reflection", 3.0), row(250, "rank", 1.8), row(1000, "rank", 3.3),
            row(250, "rank", 9.9)]  # the last repeats a row: shown once, from the first run
    lines = [x for x in mod.results_section(runs, ["cmd"]).splitlines() if x.startswith("| images")]
    assert [x.rsplit("|", 2)[-2].strip() for x in lines] == ["1.000", "1.000", "1.200", "1.100"]
