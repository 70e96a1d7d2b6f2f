"""The GPT-NeoX teacher against Hugging Face transformers (test-only reference, tiny random configs, no
downloads), and clear errors for bad checkpoint folders."""

import json

import pytest
import torch
from attn2mamba import CheckpointError, GPTNeoX, LMConfig, load_gpt_neox, save_gpt_neox

transformers = pytest.importorskip("transformers")


def hf_model(**kw):
    cfg = transformers.GPTNeoXConfig(
        vocab_size=97,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=80,
        max_position_embeddings=64,
        **kw,
    )
    torch.manual_seed(0)
    m = transformers.GPTNeoXForCausalLM(cfg).eval()
    with torch.no_grad():  # random biases and norms, so that every weight matters
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.mark.parametrize(
    "kw",
    [
        dict(rotary_pct=0.25, use_parallel_residual=True),
        dict(rotary_pct=0.5, use_parallel_residual=False, hidden_act="gelu_new"),
        dict(rotary_pct=1.0, rotary_emb_base=500.0, use_parallel_residual=True),
    ],
    ids=["pythia", "sequential-residual", "full-rotary"],
)
def test_checkpoint_written_by_transformers_gives_the_same_logits(tmp_path, kw):
    ref = hf_model(**kw)
    ref.save_pretrained(tmp_path)
    ours = load_gpt_neox(tmp_path).eval()
    x = torch.randint(0, 97, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x).logits, rtol=1e-5, atol=1e-5)


def test_old_style_pythia_config_json(tmp_path):
    """Pythia's published config.json uses rotary_pct / rotary_emb_base, not rope_parameters."""
    ref = hf_model(rotary_pct=0.25)
    ref.save_pretrained(tmp_path)
    d = json.loads((tmp_path / "config.json").read_text())
    rope = d.pop("rope_parameters")
    d.update(rotary_pct=rope["partial_rotary_factor"], rotary_emb_base=rope["rope_theta"])
    (tmp_path / "config.json").write_text(json.dumps(d))
    ours = load_gpt_neox(tmp_path)
    assert ours.config.rotary_pct == 0.25 and ours.config.rotary_base == 10000.0
    x = torch.randint(0, 97, (1, 30))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x).logits, rtol=1e-5, atol=1e-5)


def test_saved_teacher_loads_in_transformers(tmp_path):
    torch.manual_seed(0)
    ours = GPTNeoX(LMConfig(vocab_size=50, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=40))
    ours.init_weights(std=0.1)
    save_gpt_neox(ours, tmp_path)
    ref = transformers.GPTNeoXForCausalLM.from_pretrained(tmp_path).eval()
    x = torch.randint(0, 50, (2, 25))
    with torch.no_grad():
        torch.testing.assert_close(ref(x).logits, ours(x), rtol=1e-5, atol=1e-5)
    again = load_gpt_neox(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(again(x), ours(x), rtol=0, atol=0)


def test_bad_checkpoint_folders(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_gpt_neox(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_gpt_neox(tmp_path / "empty")
    folder = tmp_path / "model"
    hf_model().save_pretrained(folder)
    d = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**d, "model_type": "llama"}))
    with pytest.raises(CheckpointError, match="not gpt_neox"):
        load_gpt_neox(folder)
    (folder / "config.json").write_text(json.dumps({**d, "num_hidden_layers": 3}))
    with pytest.raises(CheckpointError, match="weights missing from the checkpoint"):
        load_gpt_neox(folder)
    (folder / "config.json").write_text(json.dumps(d))
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no \\*.safetensors"):
        load_gpt_neox(folder)
