"""policy-transfer: transfer learning by modelling a distribution over policies (arXiv 1906.03574)."""

from paperkit.lazy import lazy_exports

# Each name is imported on first use, so that `import policy_transfer` and `train --help` load no torch
# (registering the gymnasium ids below imports gymnasium, not the environments).
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".baselines": ["BayesianPolicy", "EnsemblePolicy", "SinglePolicy", "single_policy"],
        ".distribution": ["InferenceNet", "LatentPolicy", "entropy_lower_bound"],
        ".envs": ["EnvError", "GymVectorEnv", "make_minigrid", "make_vector_env"],
        ".registration": ["register"],
        ".arms": ["Arm"],
        ".evaluate": ["load_policy", "render_strip", "rollouts"],
        ".exact": ["coverage_exact", "exact_success", "occupancy", "visitation_diversity"],
        ".gridworld": [
            "BatchedGridWorld",
            "GridError",
            "GridWorldEnv",
            "GridWorldVectorEnv",
            "Layout",
            "make_layout",
            "parse_layout",
        ],
        ".policy": ["ObsSpec", "PolicyFamily"],
        ".rl": [
            "Learner",
            "PPOConfig",
            "compute_gae",
            "evaluate_latents",
            "init_population",
            "population_forward",
        ],
    },
)

from .registration import register as _register  # noqa: E402  (gymnasium only: the ids gym.make knows)

_register()
