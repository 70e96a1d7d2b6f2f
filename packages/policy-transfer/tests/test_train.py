"""The trainer end to end: a smoke run, determinism, SIGINT then resume, bad input."""

import json
from pathlib import Path

import pytest
from paperkit.testing import interrupt_when as _interrupt_when
from policy_transfer.train import main

# a GridWorld run of a few seconds: 2 seeds, 3 conditions, tiny budgets
TINY = [
    "--preset",
    "smoke",
    "--experiments",
    "gridworld",
    "--conditions",
    "distribution,single,scratch",
    "--grid-layout",
    "open5",
    "--grid-start",
    "2,2",
    "--grid-source",
    "0,4",
    "--grid-far",
    "4,0",
    "--grid-max-steps",
    "12",
    "--pretrain-steps",
    "512",
    "--finetune-steps",
    "512",
]


def read(folder: Path, name: str):
    return json.loads((folder / name).read_text())


@pytest.mark.slow
def test_smoke_preset_writes_claims_figures_and_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--preset", "smoke", "--out", str(out)]) == 0
    summary = read(out, "summary.json")
    ring_ids = {f"ring_coverage_beats_{a}" for a in ("entropy", "single", "ensemble", "lambda0")}
    ring_ids |= {
        f"ring_near_transfer_beats_{a}" for a in ("scratch", "single", "entropy", "lambda0", "ensemble")
    }
    assert {c["id"] for c in summary["claims"]} == {
        "near_transfer_beats_scratch",
        "ring_visits_differ_between_latents",
        "ring_far_transfer_beats_scratch",
        *ring_ids,
    }
    for c in summary["claims"]:
        # every claim is measured over seeds against a named control arm
        assert set(c) >= {"id", "statement", "value", "op", "threshold", "passed", "interval", "control"}
        assert c["control"]["name"] and len(c["control"]["values"]) == c["seeds"]
    assert {
        "gridworld_transfer.png",
        "coverage.png",
        "minigrid_transfer.png",
        "ring_diversity.png",
        "ring_transfer.png",
    } <= {p.name for p in out.glob("*.png")}
    res = summary["results"]
    grid = res["gridworld"]
    assert set(grid["summary"]) == {"distribution", "single", "scratch", "bayes", "ensemble"}
    for cond, row in grid["summary"].items():
        assert row["near_steps"]["lo"] <= row["near_steps"]["mean"] <= row["near_steps"]["hi"]
        assert ("coverage_exact" in row) == (cond != "scratch")
    # the claim's value is the mean difference of the arms' per-seed values, decided on its interval
    claim = next(c for c in summary["claims"] if c["id"] == "near_transfer_beats_scratch")
    diff = grid["comparisons"]["near_steps_distribution_minus_scratch"]["mean"]
    assert claim["value"] == pytest.approx(diff)
    assert claim["passed"] == (claim["interval"][1] < 0)
    ring = res["ring"]
    assert set(ring["arms"]) == {"distribution", "lambda0", "single", "entropy", "ensemble"}
    assert [ring["lambda"], ring["sigma"]] in ring["selection"]["lambda_sigma"]["candidates"]
    assert set(ring["transfer"]) == {"distribution", "lambda0", "single", "entropy", "ensemble", "scratch"}
    for row in ring["transfer"].values():
        for setting in ("near", "far"):
            assert 0 <= row[setting]["steps"]["mean"] <= row[setting]["budget"] + 8 * 8 * 8
    # the claim's control values are the scratch arm's per-seed steps
    near = next(c for c in summary["claims"] if c["id"] == "ring_near_transfer_beats_scratch")
    assert sum(near["control"]["values"]) / near["seeds"] == pytest.approx(
        ring["transfer"]["scratch"]["near"]["steps"]["mean"]
    )
    # the single policy is one policy: one distinct route, no visitation spread between latents
    assert ring["arms"]["single"]["routes"]["mean"] == 1.0
    assert ring["arms"]["single"]["visits_between"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert set(res["minigrid"]["steps"]) == {"distribution", "scratch"}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows} >= {
        "ring/dev/latent",
        "ring/test/ensemble",
        "ring/transfer/far/single",
        "grid/pretrain/latent",
        "grid/scratch",
        "minigrid/transfer",
    }
    assert "results in" in capsys.readouterr().out


def test_same_seed_same_run_and_another_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main([*TINY, "--out", str(a)]) == 0
    assert main([*TINY, "--out", str(b)]) == 0
    assert main([*TINY, "--seed", "1", "--out", str(c)]) == 0
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    assert read(a, "summary.json")["results"]["gridworld"] == read(b, "summary.json")["results"]["gridworld"]
    assert (a / "metrics.jsonl").read_text() != (c / "metrics.jsonl").read_text()


def test_sigint_then_resume_equals_an_uninterrupted_run(tmp_path):
    ref = tmp_path / "ref"
    assert main([*TINY, "--out", str(ref)]) == 0
    cut = tmp_path / "cut"
    # one metrics line per iteration, 2 iterations per phase: interrupt inside the first fine-tuning phase
    t = _interrupt_when(cut / "metrics.jsonl", 3)
    assert main([*TINY, "--out", str(cut)]) == 130
    t.join()
    progress = read(cut / "checkpoints", "progress.json")
    assert "grid/pretrain" in progress["phases"] and "grid/scratch" not in progress["phases"]
    assert main(["--resume", str(cut)]) == 0
    assert (cut / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    assert read(cut, "summary.json")["claims"] == read(ref, "summary.json")["claims"]
    assert (
        read(cut, "summary.json")["results"]["gridworld"] == read(ref, "summary.json")["results"]["gridworld"]
    )


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--grid-source", "6,2", "--grid-layout", "four_rooms"], "is a wall in layout 'four_rooms'"),
        (["--grid-far", "9,9"], "outside the 9x9 grid"),
        (["--mg-env", "MiniGrid-Nowhere-v0"], "unknown MiniGrid environment id 'MiniGrid-Nowhere-v0'"),
        (["--mg-target", "0,3"], "--mg-target: goal_pos (0, 3) is in a wall"),
        (["--grid-layout", "spiral"], "unknown layout 'spiral'"),
        (["--conditions", "distribution,oracle"], "--conditions must be one of"),
        (["--lam", "-1"], "--lam must be >= 0"),
        (["--grid-near", "3,2"], "--grid-near must be LOW,HIGH"),
        (["--grid-start", "1"], "--grid-start needs two numbers"),
        (["--num-minibatches", "3"], "is not divisible by --num-minibatches 3"),
        (["--preset", "huge"], "invalid choice"),
        (["--ring-targets", "2,3"], "--ring-targets (2, 3) is a wall in layout 'ring'"),
        (["--ring-targets", "1,3,3"], "--ring-targets needs (row, col) pairs"),
        (["--select-k", "9", "--ring-latents", "8"], "--select-k 9 exceeds --ring-latents 8"),
        (["--ring-far", "2,5,2"], "--ring-far needs four numbers"),
        (["--ring-far", "2,5,2,3"], "--ring-far goal (2, 3) is a wall"),
        (["--ring-sigmas", "0"], "--ring-sigmas must be > 0"),
        (["--ring-ft-envs", "3", "--ring-ft-num-steps", "5"], "= 15 is not divisible by --num-minibatches 4"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words):
    out = tmp_path / "r"
    # every experiment's knobs are checked; the smoke preset bounds the cost if a case ever stopped failing
    every = ["--preset", "smoke", "--experiments", "ring,gridworld,minigrid"]
    assert main([*every, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_help_and_import_load_no_torch():
    """`train --help` and `import policy_transfer` load no torch; registering the gymnasium ids on import does
    load gymnasium (and with it numpy)."""
    import gymnasium
    from paperkit.testing import HEAVY, assert_help_is_light

    assert "--preset" in assert_help_is_light(
        "policy_transfer.cli", heavy=tuple(h for h in HEAVY if h != "numpy" and h != "gymnasium")
    )
    import policy_transfer  # noqa: F401

    assert {"PolicyTransfer/GridWorld-v0", "PolicyTransfer/MiniGrid-MovedGoal-v0"} <= set(gymnasium.registry)
