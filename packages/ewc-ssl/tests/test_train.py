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
    cfg = Config(**PRESETS["smoke"])
    from ewc_ssl import DINO
    from paperkit.checkpoint import load_weights

    (weights,) = (smoke / "checkpoints").glob("pretrain--s0/step-*/weights.safetensors")
    dino = DINO(build_ssl(cfg), total_samples=1, base_batch_size=1)
    dino.load_state_dict(load_weights(weights)["dino"])
    ssl = dino.teacher.module
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
        (["--fisher-variant", "diagonal"], "invalid choice"),
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


@pytest.mark.slow
def test_paper_preset_on_a_tiny_waterbirds_folder(tmp_path):
    """The paper path end to end on a folder written here: a timm CNN, its 'released' weights and Fisher as
    local files (one with the usual wrapper prefixes), fine-tuning arms, claims."""
    timm = pytest.importorskip("timm")
    from test_data import write_waterbirds

    root = write_waterbirds(tmp_path / "wb", n=12)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    weights = tmp_path / "dino_resnet.pth"
    torch.save({"teacher": {f"backbone.{k}": v for k, v in model.state_dict().items()}}, weights)
    fim = tmp_path / "fim.pth"
    torch.save({f"module.{n}": torch.rand_like(p) for n, p in model.named_parameters()}, fim)
    out = tmp_path / "run"
    argv = [
        "--preset",
        "paper",
        "--data",
        str(root),
        "--backbone-weights",
        str(weights),
        "--fisher",
        str(fim),
        "--model",
        "resnet10t",
        "--image-size",
        "32",
        "--seeds",
        "2",
        "--lams",
        "10",
        "--ft-epochs",
        "1",
        "--wb-batch",
        "4",
        "--wb-workers",
        "0",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    summary = read(out, "summary.json")
    assert {c["id"] for c in summary["claims"]} == {"ewc_worst_group", "fisher_vs_l2sp"}
    assert set(summary["results"]["arms"]["0"]) == {"ft", "ewc/10", "l2sp/10"}
    bad = [*argv[:-1], str(tmp_path / "run2")]
    bad[bad.index(str(fim))] = str(tmp_path / "nofile.pth")
    assert main(bad) == 2


def test_help_and_import_load_no_torch():
    from paperkit.testing import assert_help_is_light

    assert "--preset" in assert_help_is_light("ewc_ssl.cli")
