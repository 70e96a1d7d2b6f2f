"""GridWorld: gymnasium's checker, the batched twin against a SAME_STEP SyncVectorEnv, clear errors; MiniGrid."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from policy_transfer import (
    BatchedGridWorld,
    EnvError,
    GridError,
    GridWorldEnv,
    GridWorldVectorEnv,
    make_layout,
    make_minigrid,
    make_vector_env,
    parse_layout,
)
from policy_transfer.gridworld import ENV_ID


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(layout="open9", start=(4, 4), goal=(0, 8)),
        dict(layout="four_rooms", start=(1, 1), goal=(11, 11), max_steps=100),
        dict(layout="open5", start=None, goal=(0, 4)),
    ],
)
def test_gridworld_passes_check_env(kwargs):
    env = GridWorldEnv(**kwargs)
    check_env(env, skip_render_check=True)
    made = gym.make(ENV_ID, **kwargs)
    check_env(made.unwrapped, skip_render_check=True)


def test_gridworld_dynamics():
    env = GridWorldEnv("open3", start=(1, 1), goal=(0, 2), max_steps=3, render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert obs == 4
    assert env.step(3)[0] == 3  # left
    assert env.step(3)[:4] == (3, 0.0, False, False)  # wall: stays
    assert env.step(0)[:4] == (0, 0.0, False, True)  # up, and the third step truncates
    env.reset()
    env.step(0)  # (0, 1)
    assert env.step(1)[:4] == (2, 1.0, True, False)  # right: the goal terminates, no truncation
    assert "A" in env.render() and "G" not in env.render()


def test_four_rooms_distances():
    lay = make_layout("four_rooms")
    d = lay.distances((1, 1))
    assert d[1, 1] == 0 and d[1, 5] == 4
    assert d[1, 7] == 10  # through the door at (3, 6): down 2, right 6, up 2
    assert (d[lay.walls] == -1).all() and (d[~lay.walls] >= 0).all()
    assert len(lay.free_cells()) == 104


def _sync(goals, **kw):
    return gym.vector.SyncVectorEnv(
        [lambda g=g: GridWorldEnv(goal=g, **kw) for g in goals],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


@pytest.mark.parametrize(
    "layout, start, goals",
    [("open5", (2, 2), [(0, 4), (2, 3), (4, 0)]), ("four_rooms", (3, 3), [(2, 10), (5, 3), (3, 6)])],
)
def test_batched_twin_equals_gymnasium_same_step(layout, start, goals):
    goals = goals * 3
    kw = dict(layout=layout, start=start, max_steps=7)
    ref = _sync(goals, **kw)
    twin = BatchedGridWorld(layout, goals, start=start, max_steps=7)
    obs_ref, _ = ref.reset(seed=3)
    obs = twin.reset(seed=3)
    assert obs.tolist() == obs_ref.tolist()
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(200):
        a = rng.integers(0, 4, len(goals))
        o_r, r_r, te_r, tr_r, info = ref.step(a)
        o, r, te, tr, final = twin.step(torch.as_tensor(a))
        assert o.tolist() == o_r.tolist()
        assert r.tolist() == r_r.tolist()
        assert te.tolist() == te_r.tolist() and tr.tolist() == tr_r.tolist()
        if "_final_obs" in info:
            mask = info["_final_obs"]
            assert final[torch.as_tensor(mask)].tolist() == list(info["final_obs"][mask])
            ends += int(mask.sum())
    assert ends > 50  # both terminations and truncations were exercised
    # the torch adapter over gymnasium gives the same as the twin too
    wrapped = make_vector_env(ENV_ID, len(goals), batched=False, goal=goals, **kw)
    twin2 = make_vector_env(ENV_ID, len(goals), batched=True, goal=goals, **kw)
    assert wrapped.reset(seed=0).tolist() == twin2.reset(seed=0).tolist()
    for _ in range(50):
        a = torch.as_tensor(rng.integers(0, 4, len(goals)))
        for x, y in zip(wrapped.step(a), twin2.step(a)):
            assert x.tolist() == y.tolist()


def test_twin_random_starts_avoid_the_goal_and_resume():
    env = BatchedGridWorld("open3", [(1, 1)], num_envs=500, start=None, max_steps=1)
    obs = env.reset(seed=0)
    assert not (obs == 4).any()
    state = env.state_dict()
    a = torch.zeros(500, dtype=torch.long)
    first = env.step(a)[0]
    env.load_state_dict(state)
    assert torch.equal(env.step(a)[0], first)
    assert not (first == 4).any()


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: GridWorldEnv("four_rooms", start=(1, 1), goal=(0, 0)), "goal (0, 0) is a wall"),
        (lambda: GridWorldEnv("open5", start=(1, 1), goal=(5, 1)), "outside the 5x5 grid"),
        (lambda: GridWorldEnv("open5", start=(1, 1), goal=(1, 1)), "same cell"),
        (lambda: BatchedGridWorld("four_rooms", [(6, 1)], num_envs=2, start=(1, 1)), "goal (6, 1) is a wall"),
        (lambda: make_layout("spiral"), "unknown layout 'spiral'"),
        (lambda: parse_layout("#x#"), "unknown characters"),
        (lambda: make_vector_env("Nope-v0", 2), "unknown environment id 'Nope-v0'"),
        (
            lambda: make_vector_env(ENV_ID, 2, batched=False, layout="four_rooms", start=(1, 1), goal=(6, 6)),
            "is a wall",
        ),
        (lambda: make_minigrid("PolicyTransfer/MiniGrid-MovedGoal-v0", size=6, goal_pos=(5, 2)), "in a wall"),
        (lambda: make_minigrid("MiniGrid-FourRooms-v0", goal_pos=(9, 4)), "in a wall"),
        (lambda: make_minigrid("MiniGrid-Nothing-v0"), "unknown MiniGrid environment id"),
    ],
)
def test_bad_ids_and_cells_raise_clear_errors(make, words):
    with pytest.raises((GridError, EnvError)) as e:
        make()
    assert words in str(e.value)


def test_minigrid_moved_goal_vector_env():
    env = make_vector_env("PolicyTransfer/MiniGrid-MovedGoal-v0", 3, n_actions=3, size=5, goal_pos=(1, 3))
    obs = env.reset(seed=0)
    assert obs.shape == (3, 147) and obs.dtype == torch.float32 and obs.max() <= 1.0
    inner = env.envs.envs[0].unwrapped
    assert inner.grid.get(1, 3).type == "goal" and inner.grid.get(3, 3) is None
    # start (1, 1) facing east: turn right (south), forward twice reaches (1, 3)
    for a, done in ((1, False), (2, False), (2, True)):
        obs, r, term, trunc, final = env.step(torch.full((3,), a))
        assert bool(term.all()) is done
    assert (r > 0.9).all()
    assert not torch.equal(final, obs)  # final_obs is the last view, obs already the reset one
    env.close()


def test_vector_env_interface_equals_sync_vector_env_with_episode_statistics():
    """GridWorldVectorEnv steps like a SAME_STEP SyncVectorEnv of GridWorldEnv wrapped in gymnasium's
    RecordEpisodeStatistics: observations, rewards, ends, final observations and episode returns/lengths."""
    goals = [(0, 4), (2, 3), (4, 0)] * 2
    kw = dict(layout="open5", start=(2, 2), max_steps=6)
    ref = gym.wrappers.vector.RecordEpisodeStatistics(_sync(goals, **kw))
    envs = GridWorldVectorEnv(goals=goals, **kw)
    assert isinstance(envs, gym.vector.VectorEnv)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    assert envs.observation_space == ref.observation_space and envs.action_space == ref.action_space
    o_r, _ = ref.reset(seed=1)
    o, _ = envs.reset(seed=1)
    assert isinstance(o, np.ndarray) and o.tolist() == o_r.tolist()
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(120):
        a = rng.integers(0, 4, len(goals))
        o_r, r_r, te_r, tr_r, i_r = ref.step(a)
        o, r, te, tr, info = envs.step(a)
        for x, y in ((o, o_r), (r, r_r), (te, te_r), (tr, tr_r)):
            assert x.tolist() == y.tolist()
        assert ("_episode" in info) == ("_episode" in i_r)
        if "_episode" in info:
            m = info["_episode"]
            assert m.tolist() == i_r["_episode"].tolist()
            assert info["episode"]["r"][m].tolist() == i_r["episode"]["r"][m].tolist()
            assert info["episode"]["l"][m].tolist() == i_r["episode"]["l"][m].tolist()
            assert list(info["final_obs"][m]) == list(i_r["final_obs"][m])
            episodes += int(m.sum())
    assert episodes > 30
    t = GridWorldVectorEnv(goals=goals, array="torch", **kw)
    obs, _ = t.reset(seed=1)
    assert torch.is_tensor(obs) and obs.tolist() == envs.reset(seed=1)[0].tolist()


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("PolicyTransfer/MiniGrid-MovedGoal-v0", {"size": 6, "goal_pos": (1, 4)}),
        ("MiniGrid-FourRooms-v0", {"goal_pos": (16, 12), "agent_pos": (3, 3)}),
    ],
)
def test_minigrid_envs_pass_check_env_and_rebuild_from_their_spec(env_id, kwargs):
    import pickle
    import warnings

    env = make_minigrid(env_id, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium recommends env.unwrapped; the wrapped env is what we use
        check_env(env, skip_render_check=True)
    rebuilt = gym.make(pickle.loads(pickle.dumps(env.spec)))
    assert rebuilt.observation_space == env.observation_space == gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
    a, _ = env.reset(seed=5)
    b, _ = rebuilt.reset(seed=5)
    np.testing.assert_array_equal(a, b)
    for action in (2, 1, 2, 2, 0, 2):
        sa, sb = env.step(action), rebuilt.step(action)
        np.testing.assert_array_equal(sa[0], sb[0])
        assert sa[1:4] == sb[1:4]
