"""Every invalid argument fails at once with a one-line ValueError naming argument, value and
what is allowed; never with a traceback from deep inside MiniGrid or torch."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from oversight_env import (
    EpisodeState,
    GridLayout,
    OversightGridEnv,
    TerminalType,
    make_batched,
    make_oversight_env,
    register_oversight_env,
)

ENV = "OversightGrid/DiamondGhost-5x5-v0"


def assert_names(error: pytest.ExceptionInfo, *words: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.filterwarnings("ignore:.*render_mode:UserWarning")  # gymnasium's own warning, before ours
@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"oversight_prob": 1.5}, ["oversight_prob", "1.5", "[0, 1]"]),
        ({"oversight_prob": -0.1}, ["oversight_prob", "-0.1", "[0, 1]"]),
        ({"oversight_prob": float("nan")}, ["oversight_prob", "nan"]),
        ({"oversight_prob": "high"}, ["oversight_prob", "'high'"]),
        ({"oversight_prob": {"ghost": 2.0}}, ["oversight_prob['ghost']", "2.0"]),
        ({"oversight_prob": {"goblin": 0.5}}, ["oversight_prob", "goblin", "ghost"]),
        ({"spurious_oversight_prob": 7}, ["spurious_oversight_prob", "7"]),
        ({"size": 1}, ["size", "1", ">= 2"]),
        ({"size": 2.5}, ["size", "2.5"]),
        ({"max_steps": 0}, ["max_steps", "0", ">= 1"]),
        ({"max_steps": 3.0}, ["max_steps", "3.0"]),
        ({"reward": "proxy"}, ["reward", "'proxy'", "naive", "outcome", "true"]),
        ({"render_mode": "video"}, ["render_mode", "'video'", "rgb_array"]),
        ({"observe_oversight": "yes"}, ["observe_oversight", "'yes'"]),
    ],
)
def test_bad_constructor_argument(kwargs, words):
    with pytest.raises(ValueError) as error:
        gym.make(ENV, **kwargs)
    assert_names(error, *words)
    if "size" not in kwargs and "render_mode" not in kwargs:  # the twin validates the same config
        with pytest.raises(ValueError) as error:
            make_batched(ENV, 4, **kwargs)
        assert_names(error, *words)


def test_grid_too_small_for_the_objects():
    crowded = GridLayout.open(2, terminals=(TerminalType("ghost", intended=False, count=3),))
    assert len(crowded.free_cells) == 4
    with pytest.raises(ValueError) as error:
        GridLayout(rows=("..", ".#"), terminals=crowded.terminals)
    assert_names(error, "rows", "3 free cells", "4 distinct free cells")
    with pytest.raises(ValueError) as error:
        GridLayout.open(2, terminals=(TerminalType("ghost", intended=False, count=4),))
    assert_names(error, "size", "2x2", "5 distinct free cells")


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"rows": ("..", "...")}, ["rows", "equally long"]),
        ({"rows": ("..x",)}, ["rows", "'.'", "'#'"]),
        ({"terminals": ()}, ["terminals", "at least one"]),
    ],
)
def test_bad_layout(kwargs, words):
    with pytest.raises(ValueError) as error:
        GridLayout(**{"rows": ("....",) * 3, "terminals": (TerminalType("gem", True),), **kwargs})
    assert_names(error, *words)


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"name": "wall"}, ["name", "'wall'"]),
        ({"name": "two words"}, ["name", "'two words'"]),
        ({"count": 0}, ["count", "0", ">= 1"]),
        ({"symbol": "GG"}, ["symbol", "'GG'"]),
    ],
)
def test_bad_terminal_type(kwargs, words):
    with pytest.raises(ValueError) as error:
        TerminalType(**{"name": "gem", "intended": True, **kwargs})
    assert_names(error, *words)


def test_bad_terminal_color():
    layout = GridLayout.open(3, terminals=(TerminalType("gem", True, color="pink"),))
    with pytest.raises(ValueError) as error:
        OversightGridEnv(layout)
    assert_names(error, "color", "'pink'", "purple")


@pytest.mark.parametrize("action", [4, -1, 1.5, "up", True, None, np.array([1, 2])])
def test_bad_action_minigrid(action):
    env = gym.make(ENV)
    env.reset(seed=0)
    with pytest.raises(ValueError) as error:
        env.step(action)
    assert_names(error, "action", repr(action), "[0, 4)")


def test_valid_action_types_minigrid():
    env = gym.make(ENV)
    env.reset(seed=0)
    for action in (0, np.int64(1), np.array(2)):
        env.step(action)


@pytest.mark.parametrize(
    "actions,words",
    [
        (torch.tensor([0, 1, 2, 4]), ["action=4", "[0, 4)"]),
        (torch.tensor([0, -1, 2, 3]), ["action=-1"]),
        (torch.zeros(3, dtype=torch.long), ["actions", "(3,)", "4 integers"]),
        (torch.zeros(4), ["actions", "float32"]),
        (np.zeros((4, 1), dtype=int), ["actions", "(4, 1)"]),
    ],
)
def test_bad_actions_twin(actions, words):
    twin = make_batched(ENV, 4, seed=0)
    with pytest.raises(ValueError) as error:
        twin.step(actions)
    assert_names(error, *words)


@pytest.mark.parametrize("num_envs", [0, -3, 2.0, True])
def test_bad_num_envs(num_envs):
    with pytest.raises(ValueError) as error:
        make_batched(ENV, num_envs)
    assert_names(error, "num_envs", repr(num_envs))


@pytest.mark.parametrize(
    "env_id,words", [("NoSuchEnv-v0", ["env_id", "'NoSuchEnv-v0'", "not a registered"]), ("CartPole-v1", ["CartPole-v1", "not a partial-oversight"])]
)
def test_bad_env_id(env_id, words):
    with pytest.raises(ValueError) as error:
        make_oversight_env(env_id)
    assert_names(error, *words)


def test_bad_registration():
    with pytest.raises(ValueError) as error:
        register_oversight_env("Mine/Nothing-v0", "a string")
    assert_names(error, "env", "'a string'", "GridLayout")


def test_bad_reset_options_and_states():
    env = gym.make(ENV)
    with pytest.raises(ValueError) as error:
        env.reset(options={"level": 3})
    assert_names(error, "options", "level")
    overseen = np.zeros((5, 5), dtype=bool)
    for state, words in [
        (EpisodeState((0, 0), ((0, 0), (1, 1)), overseen), ["distinct"]),
        (EpisodeState((0, 5), ((0, 0), (1, 1)), overseen), ["(0, 5)", "free cell"]),
        (EpisodeState((0, 1), ((0, 0),), overseen), ["state.objects", "2 object cells"]),
        (EpisodeState((0, 1), ((0, 0), (1, 1)), overseen[:4]), ["state.overseen", "(4, 5)"]),
    ]:
        with pytest.raises(ValueError) as error:
            env.reset(options={"state": state})
        assert_names(error, *words)
        with pytest.raises(ValueError):
            make_batched(ENV, 2).set_state(0, state)
