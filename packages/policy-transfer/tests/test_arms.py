"""Arms (the conditions as objects), per-run sigma, the ring's transfer measurement, the torch-free config."""

import ast
import math
from pathlib import Path

import pytest
import torch
from policy_transfer import BatchedGridWorld, LatentPolicy, Learner, ObsSpec, PPOConfig, init_population
from policy_transfer.arms import Arm, groups
from policy_transfer.config import Config
from policy_transfer.exact import exact_success, policy_tables
from policy_transfer.gridworld import make_layout
from policy_transfer.ring import _exact_fn, _first_hit


def test_arms_build_their_families_and_name_their_policies():
    cfg = Config()
    spec = ObsSpec("index", 25)
    gen = torch.Generator().manual_seed(0)
    arms = [
        Arm("d", "latent", lam=0.3, sigma=0.05),
        Arm("s", "single"),
        Arm("e", "ensemble"),
        Arm("l0", "latent"),
        Arm("b", "bayes", lam=0.1),
    ]
    assert [(k, [a.name for a in v]) for k, v in groups(arms).items()] == [
        ("latent", ["d", "l0"]),
        ("single", ["s"]),
        ("ensemble", ["e"]),
        ("bayes", ["b"]),
    ]
    for arm in arms:
        fam = arm.family(spec, 4, cfg)
        z = arm.latents(fam, 3, 5, gen)
        assert z.shape[0] == 3 and z.shape[-1] == fam.latent_dim
        if arm.kind == "ensemble":  # the K distinct heads, not draws with replacement
            assert torch.equal(z[0], torch.eye(cfg.ensemble_heads))
        if arm.kind == "single":  # every draw is the same policy
            assert not z.any() and not arm.selects
    assert arms[0].family(spec, 4, cfg).probe_noise == 0.05
    resolved = arms[1].resolve(cfg)
    assert resolved.ent_coef == cfg.ent_coef and resolved.sigma == cfg.probe_noise
    with pytest.raises(ValueError, match="Arm.kind"):
        Arm("x", "oracle")


def test_per_run_sigma_is_each_runs_own_probe_noise():
    """sigma is per run: run 0 of a population follows the same updates whatever run 1's sigma is, equals the
    run with the family's own probe_noise (sigma=None), and differs when its own sigma changes."""
    spec = ObsSpec("index", 25)
    cfg = PPOConfig(num_envs=4, num_steps=8, lr=0.05, probe_states=4, probe_latents=4)
    torch.manual_seed(0)
    fams = [LatentPolicy(spec, 4, latent_dim=3, probe_noise=0.05) for _ in range(2)]

    def train(sigma):
        env = BatchedGridWorld("open5", [(0, 4)], num_envs=2 * cfg.num_envs, start=(2, 2), max_steps=12)
        learner = Learner(fams[0], init_population(fams), env, cfg, lam=1.0, sigma=sigma, seed=3)
        for _ in range(3):
            learner.iterate()
        return {k: v[0].detach() for k, v in learner.params.items()}

    a = train(torch.tensor([0.05, 0.3]))
    b = train(torch.tensor([0.05, 0.05]))
    default = train(None)
    other = train(torch.tensor([0.3, 0.3]))
    for k in a:
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], default[k]), k
    assert not torch.equal(a["pi_hyper"], other["pi_hyper"])
    # the bound's noise entropy is the per-run sigma's
    probe = torch.tensor([0, 1, 2, 3])
    zq, noise = fams[0].diversity_inputs(5, 4, torch.Generator().manual_seed(1))
    lo, hi = (fams[0].diversity(probe, zq, noise, torch.tensor(s)) for s in (0.05, 0.3))
    assert float(lo["bound"] - lo["mi"] - (hi["bound"] - hi["mi"])) == pytest.approx(
        4 * 4 * math.log(0.05 / 0.3)  # phi: 4 probes x 4 actions
    )


def test_first_hit_counts_scoring_and_censors_at_the_budget():
    curve = torch.tensor(
        [
            [0.95, 0.1, 0.0],  # before training: run 0 is already there
            [0.95, 0.5, 0.2],
            [0.95, 0.92, 0.3],
            [0.95, 0.80, 0.4],
        ]
    )
    steps, reached = _first_hit(curve, 128, 0.9, torch.tensor([64.0, 64.0, 0.0]))
    assert steps.tolist() == [64.0, 64.0 + 2 * 128, 3 * 128] and reached.tolist() == [True, True, False]


def test_exact_transfer_measure_is_each_runs_success_on_its_own_goal():
    lay = make_layout("ring")
    cfg = Config()
    fam = Arm("s", "single").family(ObsSpec("index", lay.n_cells), 4, cfg)
    torch.manual_seed(1)
    params = init_population(
        [Arm("s", "single").family(ObsSpec("index", lay.n_cells), 4, cfg) for _ in range(3)]
    )
    latent = torch.zeros(3, 1)
    goals = [(1, 3), (3, 3), (1, 3)]
    fn = _exact_fn(fam, latent, lay, (2, 1), goals, 4)
    got = fn(params)
    probs = policy_tables(fam, params, lay.n_cells, latent.view(3, 1, 1))
    table = torch.as_tensor(lay.transitions())
    want = exact_success(probs, table, lay.index((2, 1)), [lay.index(g) for g in goals], 4)[:, 0]
    torch.testing.assert_close(got, torch.stack([want[0, 0], want[1, 1], want[2, 2]]).float())


def test_config_module_imports_no_torch():
    """``train --help`` must not import torch: config.py's imports are the standard library and paperkit."""
    src = Path(__file__).parents[1] / "src" / "policy_transfer" / "config.py"
    tree = ast.parse(src.read_text())
    top = set()
    for node in tree.body:  # module level only (check() imports lazily)
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            top.add((node.module or "").split(".")[0] if node.level == 0 else "." + (node.module or ""))
    assert top <= {"__future__", "dataclasses", "paperkit"}, top
