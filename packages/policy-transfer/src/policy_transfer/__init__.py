"""policy-transfer: transfer learning by modelling a distribution over policies (arXiv 1906.03574)."""

from .baselines import BayesianPolicy, EnsemblePolicy, SinglePolicy, single_policy
from .distribution import InferenceNet, LatentPolicy, entropy_lower_bound
from .envs import EnvError, GymVectorEnv, make_minigrid, make_vector_env, register
from .exact import coverage_exact, exact_success, occupancy, visitation_diversity
from .gridworld import (
    BatchedGridWorld,
    GridError,
    GridWorldEnv,
    GridWorldVectorEnv,
    Layout,
    make_layout,
    parse_layout,
)
from .policy import ObsSpec, PolicyFamily
from .rl import Learner, PPOConfig, compute_gae, evaluate_latents, init_population, population_forward

register()

__all__ = [
    "BatchedGridWorld",
    "BayesianPolicy",
    "EnsemblePolicy",
    "EnvError",
    "GridError",
    "GridWorldEnv",
    "GridWorldVectorEnv",
    "GymVectorEnv",
    "InferenceNet",
    "LatentPolicy",
    "Layout",
    "Learner",
    "ObsSpec",
    "PPOConfig",
    "PolicyFamily",
    "SinglePolicy",
    "compute_gae",
    "coverage_exact",
    "entropy_lower_bound",
    "evaluate_latents",
    "exact_success",
    "init_population",
    "make_layout",
    "make_minigrid",
    "make_vector_env",
    "occupancy",
    "parse_layout",
    "population_forward",
    "register",
    "single_policy",
    "visitation_diversity",
]
