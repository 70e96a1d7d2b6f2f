"""The trainer end to end: smoke run and its claims, resume after SIGINT, bad input, the paper preset on a tiny
local checkpoint, torchrun with FSDP."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from attn2mamba import GPTNeoX, LMConfig, load_gpt_neox, save_gpt_neox
from attn2mamba.train import main
from paperkit.testing import interrupt_when as _interrupt_when
from safetensors.torch import load_file

SMOKE = ["--preset", "smoke"]


def read(folder: Path, name: str):
    return json.loads((folder / name).read_text())


def final_weights(folder: Path, key: str) -> dict:
    (path,) = (folder / "checkpoints").glob(f"{key}/step-*/weights.safetensors")
    return load_file(str(path))


def test_smoke_run_writes_results_claims_figure_and_teacher(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*SMOKE, "--out", str(out)]) == 0
    summary = read(out, "summary.json")
    claims = {c["id"]: c for c in summary["claims"]}
    assert set(claims) == {
        "stage1_adds",
        "beats_naive",
        "mamba_vs_teacher",
        "stage1_improves",
        "step0_equals_stage1",
    }
    for c in claims.values():
        assert set(c) >= {"id", "statement", "value", "op", "threshold", "passed"}
    # claims over seeds carry the per-seed values, an interval and the control arm measured in the same run
    for k in ("stage1_adds", "beats_naive", "mamba_vs_teacher", "stage1_improves"):
        assert claims[k]["seeds"] == 2 and len(claims[k]["interval"]) == 2 and claims[k]["control"]["name"]
    # the step-0 equivalence is exact at any scale
    assert claims["step0_equals_stage1"]["passed"] and claims["step0_equals_stage1"]["value"] < 1e-5
    res = summary["results"]
    arms = res["arms"]
    mamba = [a["ppl"] for a in arms["stage2@0.25"]]
    teacher = res["teacher"]["ppl"]
    assert claims["mamba_vs_teacher"]["values"] == pytest.approx([m / teacher for m in mamba])
    assert claims["stage1_adds"]["values"] == pytest.approx([math.log(m) for m in mamba])
    assert claims["stage1_adds"]["control"]["values"] == pytest.approx(
        [math.log(c["ppl"]) for c in arms["control"]]
    )
    # stage 2, its control and the baseline saw the same numbers of tokens, per seed
    for s1, s2, ctl, nv in zip(arms["stage1@0.25"], arms["stage2@0.25"], arms["control"], arms["naive"]):
        assert s1["tokens"] + s2["tokens"] == nv["tokens"] == res["student_steps"] * res["tokens_per_step"]
        assert ctl["tokens"] == s2["tokens"] and ctl["curve"][0]["tokens"] == s1["tokens"]
    # seeds differ; the untrained stage-1 arm is one deterministic model
    assert mamba[0] != mamba[1] and arms["stage1@0"][0] == arms["stage1@0"][1]
    # claims on test, choices on validation: both are recorded and they differ
    assert all("val_ppl" in a and a["val_ppl"] != a["ppl"] for a in arms["naive"])
    assert res["data"]["test_tokens"] > 0 and res["data"]["split"]["duplicate_paragraph_bytes"] > 0
    assert (out / "perplexity.png").is_file() and summary["figures"] == ["perplexity.png"]
    assert set(res["samples"]) == {"prompt", "teacher", "stage1", "mamba", "naive"}
    # the tiny teacher is written as a GPT-NeoX folder that loads back
    t = load_gpt_neox(out / "teacher")
    assert t.config.vocab_size == 256 and t.config.num_layers == 2
    assert "results in" in capsys.readouterr().out


def test_sigint_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = [
        *SMOKE,
        "--teacher-steps",
        "12",
        "--student-tokens",
        str(8 * 48 * 16),
        "--curve-points",
        "4",
        "--checkpoint-every",
        "3",
        "--sample-tokens",
        "4",
    ]
    ref = tmp_path / "ref"
    assert main([*args, "--out", str(ref)]) == 0
    cut = tmp_path / "cut"
    t = _interrupt_when(cut / "metrics.jsonl", 12)  # inside stage 2
    assert main([*args, "--out", str(cut)]) == 130
    t.join()
    assert len((cut / "metrics.jsonl").read_text().splitlines()) < len(
        (ref / "metrics.jsonl").read_text().splitlines()
    )
    assert main(["--resume", str(cut)]) == 0
    assert (cut / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    for key in ("teacher", "stage2@0.25-s1", "control-s0", "naive-s1"):
        a, b = final_weights(ref, key), final_weights(cut, key)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (key, k)
    assert read(cut, "summary.json")["claims"] == read(ref, "summary.json")["claims"]
    assert read(cut, "summary.json")["results"]["samples"] == read(ref, "summary.json")["results"]["samples"]


def tiny_teacher_folder(path: Path, vocab: int = 256, max_seq_len: int = 256) -> Path:
    torch.manual_seed(0)
    t = GPTNeoX(
        LMConfig(
            vocab_size=vocab,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            intermediate_size=48,
            max_seq_len=max_seq_len,
        )
    )
    t.init_weights()
    return save_gpt_neox(t, path)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--teacher", "/nonexistent/pythia"], "teacher checkpoint folder does not exist"),
        (["--data", "/nonexistent/corpus.txt"], "--data /nonexistent/corpus.txt does not exist"),
        (["--stage1-frac", "0.25,1.5"], "--stage1-frac must be <= 1"),
        (["--normalize", "layer"], "invalid choice"),
        (["--kl-weight", "-1"], "--kl-weight must be >= 0"),
        (["--preset", "huge"], "invalid choice"),
        (["--hidden-size", "30", "--num-heads", "4"], "not divisible"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words):
    out = tmp_path / "r"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_checkpoint_mismatches_exit_2_with_one_line(tmp_path, capsys):
    small = tiny_teacher_folder(tmp_path / "vocab100", vocab=100)
    assert main([*SMOKE, "--teacher", str(small), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tokenizer/vocabulary mismatch" in err, err
    short = tiny_teacher_folder(tmp_path / "short", max_seq_len=32)
    assert main([*SMOKE, "--teacher", str(short), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--seq-len 48 is longer than the teacher's limit of 32" in err, err
    (short / "tokenizer.json").write_text("{}")
    assert main([*SMOKE, "--teacher", str(short), "--out", str(tmp_path / "c")]) == 2
    assert "use --tokenizer teacher" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([*SMOKE, "--teacher", str(tmp_path / "empty"), "--out", str(tmp_path / "d")]) == 2
    assert "no config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_llama_teacher_folder_runs_the_recipe(tmp_path):
    """--teacher with a Llama folder (GQA: 4 query heads, 2 key/value heads, written by transformers) runs every
    phase; the converted Mamba's shared keys are grouped B and step 0 still equals stage 1."""
    transformers = pytest.importorskip("transformers")
    from attn2mamba.llama import Llama

    cfg = transformers.LlamaConfig(
        vocab_size=256,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    folder = tmp_path / "llama-tiny"
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    out = tmp_path / "run"
    argv = [*SMOKE, "--teacher", str(folder), "--stage1-rotary", "--out", str(out)]
    assert main(argv) == 0
    summary = read(out, "summary.json")
    res = summary["results"]
    assert res["teacher"]["source"] == str(folder) and "steps" not in res["teacher"]
    claims = {c["id"]: c for c in summary["claims"]}
    assert claims["step0_equals_stage1"]["passed"] and claims["step0_equals_stage1"]["value"] < 1e-5
    assert isinstance(load_teacher_folder(folder), Llama)
    w = final_weights(out, "stage2@0.25-s0")
    # in_proj rows: z, x (4 heads x 8), B (2 groups x 8, rotary: head-sized), C (4 x 8), dt (4)
    assert w["model.blocks.0.mixer.in_proj.weight"].shape[0] == 32 + 32 + 2 * 8 + 4 * 8 + 4
    assert w["model.blocks.0.mixer.feature_b.weight"].shape[0] == 2  # one key map per key/value head


def load_teacher_folder(folder: Path):
    from attn2mamba.teacher import load_teacher

    return load_teacher(folder)


def paper_fixture(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny 'Pythia' folder: GPT-NeoX weights, config.json and a BPE tokenizer.json; and a text file."""
    from attn2mamba.data import pydoc_documents
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = "".join(pydoc_documents()[:6])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        [text], trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    folder = tiny_teacher_folder(tmp_path / "pythia-tiny", vocab=tok.get_vocab_size() + 4)
    tok.save(str(folder / "tokenizer.json"))
    data = tmp_path / "corpus.txt"
    data.write_text(text)
    return folder, data


PAPER_TINY = [
    "--seq-len",
    "32",
    "--batch-size",
    "4",
    "--micro-batch",
    "2",
    "--student-tokens",
    str(4 * 32 * 8),
    "--feature-dim",
    "8",
    "--eval-windows",
    "4",
    "--curve-windows",
    "2",
    "--curve-points",
    "2",
    "--sample-tokens",
    "8",
    "--device",
    "cpu",
]


def test_paper_preset_runs_a_few_steps_on_a_tiny_local_checkpoint(tmp_path):
    teacher, data = paper_fixture(tmp_path)
    out = tmp_path / "run"
    assert (
        main(
            [
                "--preset",
                "paper",
                "--teacher",
                str(teacher),
                "--data",
                str(data),
                *PAPER_TINY,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = read(out, "summary.json")
    assert read(out, "config.json")["parallel"] == "fsdp"
    res = summary["results"]
    assert res["teacher"]["source"] == str(teacher) and "naive" not in res
    assert {c["id"] for c in summary["claims"]} == {"stage1_improves", "step0_equals_stage1"}
    assert res["arms"]["stage2@0.25"][0]["steps"] == 6 and res["arms"]["stage1@0.25"][0]["steps"] == 2
    assert isinstance(res["samples"]["mamba"], str)


@pytest.mark.slow
def test_torchrun_fsdp_two_ranks_match_one_process(tmp_path):
    """The paper preset under torchrun (2 gloo ranks, FSDP2 for stage 2) equals one process up to float order."""
    teacher, data = paper_fixture(tmp_path)
    train = Path(sys.executable).parent / "train"
    args = [
        "--trainer",
        "attn2mamba",
        "--preset",
        "paper",
        "--teacher",
        str(teacher),
        "--data",
        str(data),
        *PAPER_TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    assert main([*args[2:], "--out", str(one)]) == 0
    two = tmp_path / "two"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "--no-python",
            str(train),
            *args,
            "--out",
            str(two),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r1, r2 = read(one, "summary.json")["results"], read(two, "summary.json")["results"]
    assert r2["world_size"] == 2
    for k, v in r1["perplexity"].items():
        v, w = (x["mean"] if isinstance(x, dict) else x for x in (v, r2["perplexity"][k]))
        assert w == pytest.approx(v, rel=1e-4), k
    w1, w2 = final_weights(one, "stage2@0.25-s0"), final_weights(two, "stage2@0.25-s0")
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-4, rtol=1e-4)


def test_config_module_imports_no_torch():
    """``Config``, ``PRESETS`` and ``DESCRIPTION`` live in a torch-free module (a fast ``train --help``)."""
    import attn2mamba.config as config_module

    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('cfg', {config_module.__file__!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['cfg'] = m; spec.loader.exec_module(m)\n"
        "print(sorted(k for k in ('torch', 'numpy') if k in sys.modules), sorted(m.PRESETS))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] ['default', 'paper', 'smoke']"
    from attn2mamba.train import PRESETS, Config

    assert Config is config_module.Config and PRESETS is config_module.PRESETS


def test_help_and_import_load_no_torch():
    from paperkit.testing import assert_help_is_light

    assert "--preset" in assert_help_is_light("attn2mamba.cli")
