"""The trainer end to end: smoke run and its run folder, resume after SIGINT equals an uninterrupted run, bad
input is a one-line error with exit status 2, the README's results block is the default run's summary."""

import json
from pathlib import Path

import pytest
import torch
from ewc_ssl import load_fisher
from ewc_ssl.experiment import build_ssl, seed_data
from ewc_ssl.train import PRESETS, Config, main
from paperkit.testing import assert_readme_matches_summary, interrupt_when

CLAIMS = {"ewc_worst_group", "reverse_transfer", "fisher_vs_l2sp", "gap_closes_without_bias"}


def read(folder: Path, name: str):
    return json.loads((folder / name).read_text())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    assert main(["--preset", "smoke", "--out", str(out)]) == 0
    return out


def test_smoke_run_writes_claims_fisher_and_figure(smoke):
    summary = read(smoke, "summary.json")
    assert {c["id"] for c in summary["claims"]} == CLAIMS
    for c in summary["claims"]:
        assert c["seeds"] == 2 and c["control"]["name"] and len(c["values"]) == 2
    res = summary["results"]
    assert set(res["test_worst_group"]) == {"ft", "ewc", "l2sp"}
    # lambda is one of the grid's, chosen on validation
    assert set(res["chosen_lambda"]["ewc"]) <= {3.0, 300.0}
    assert (smoke / "lambda_sweep.png").is_file()
    # the Fisher file is tied to the SSL teacher's backbone of its seed
    cfg = Config(**{k: v for k, v in PRESETS["smoke"].items()})
    from ewc_ssl.experiment import _load_ssl
    from paperkit.run import Run

    run = Run.open("ewc-ssl", read(smoke, "config.json"), out=None, resume=str(smoke))
    ssl, _ = _load_ssl(cfg, run, 0, torch.device("cpu"))
    fisher = load_fisher(smoke / "fisher-s0.safetensors", ssl.backbone)
    assert set(fisher) == {n for n, _ in ssl.backbone.named_parameters()}
    assert min(float(v.min()) for v in fisher.values()) >= cfg.fisher_floor
    rows = [json.loads(line) for line in (smoke / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows} == {"pretrain", "finetune"}


def test_splits_are_disjoint_per_seed():
    cfg = Config()
    data = seed_data(cfg, 0, cfg.correlation)
    sets = {k: set(v.tolist()) for k, v in data["indices"].items()}
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not sets[a] & sets[b], (a, b)
    assert len(data["val"]) == 2 * len(sets["val"]) and len(data["train"]) == len(sets["train"])


def test_ewc_arms_stay_closer_to_the_ssl_weights(smoke):
    """Deterministic in direction: the largest lambda keeps the backbone nearer theta* than lambda = 0."""
    arms = read(smoke, "summary.json")["results"]["arms"]
    for rec in arms.values():
        a = rec["0.95"]
        assert a["ewc/300"]["distance"] < a["ewc/3"]["distance"] < a["ft"]["distance"]
        assert a["l2sp/300"]["distance"] < a["ft"]["distance"]


def test_sigint_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = ["--preset", "smoke", "--seeds", "1", "--checkpoint-every", "5"]
    ref = tmp_path / "ref"
    assert main([*args, "--out", str(ref)]) == 0
    cut = tmp_path / "cut"
    t = interrupt_when(cut / "metrics.jsonl", 4)
    assert main([*args, "--out", str(cut)]) == 130
    t.join()
    assert main(["--resume", str(cut)]) == 0
    assert (cut / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    a, b = read(ref, "summary.json"), read(cut, "summary.json")
    assert a["claims"] == b["claims"]
    assert a["results"]["arms"] == b["results"]["arms"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--correlation", "1.5"], "--correlation must be <="),
        (["--lams", "0,1"], "--lams must be >"),
        (["--split-train", "0.9"], "sum to"),
        (["--fisher-variant", "diagonal"], "--fisher-variant must be one of"),
        (["--experiment", "waterbirds"], "needs --data"),
        (["--preset", "huge"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, words, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_ssl_model_is_a_distribution_over_prototypes():
    cfg = Config(**PRESETS["smoke"])
    model = build_ssl(cfg)
    lp = model.log_prob(torch.rand(3, 256))
    assert lp.shape == (3, cfg.prototypes)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3))


def test_readme_results_are_the_default_run():
    assert_readme_matches_summary(Path(__file__).parents[1])
