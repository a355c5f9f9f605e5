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
    crowded = GridLayout.open(2, terminals=(TerminalType("gem", True, symbol="*"), TerminalType("proxy", False, count=2, symbol="G")))
    assert len(crowded.free_cells) == 4
    with pytest.raises(ValueError) as error:
        GridLayout(rows=("..", ".#"), terminals=crowded.terminals)
    assert_names(error, "rows", "3 free cells", "4 distinct free cells")
    with pytest.raises(ValueError) as error:
        GridLayout.open(2, terminals=(TerminalType("gem", intended=True, count=4),))
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


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"colour": "red"}, ["colour='red'", "DiamondGhostEnv takes no such keyword argument", "max_steps", "tile_size"]),
        ({"width": 9}, ["width=9", "no such keyword argument"]),  # MiniGrid's own, set from the layout
        ({"tile_size": 0}, ["tile_size=0", ">= 1"]),
    ],
)
def test_unknown_or_bad_minigrid_kwarg(kwargs, words):
    with pytest.raises(ValueError) as error:
        gym.make(ENV, **kwargs)
    assert_names(error, *words)
    if "tile_size" not in kwargs:  # the twin never renders, but refuses what gym.make refuses
        with pytest.raises(ValueError) as error:
            make_batched(ENV, 4, **kwargs)
        assert_names(error, *words)


def test_subclass_lists_its_own_keyword_arguments():
    with pytest.raises(ValueError) as error:
        gym.make("OversightGrid/TwoRooms-v0", size=7)
    assert_names(error, "size=7", "TwoRoomsEnv", "max_steps")
    assert "'size'" not in str(error.value).split("expected one of")[1]  # TwoRooms has no size


def test_step_before_reset_on_the_unwrapped_env():
    env = gym.make(ENV).unwrapped
    with pytest.raises(ValueError) as error:
        env.step(0)
    assert_names(error, "action=0", "call reset() before step()")
    env.reset(seed=0)
    env.step(0)


@pytest.mark.parametrize(
    "agent,objects,step_count,words",
    [
        ((0.0, 1), ((0, 0), (1, 1)), 0, ["state.agent", "(0.0, 1)", "two integers >= 0"]),
        ((-1, 0), ((0, 0), (1, 1)), 0, ["state.agent", "(-1, 0)"]),
        ((True, 0), ((0, 0), (1, 1)), 0, ["state.agent", "(True, 0)"]),
        ((0, 1), ((0, 0), (1.5, 1)), 0, ["state.objects", "(1.5, 1)"]),
        ((0, 1, 2), ((0, 0), (1, 1)), 0, ["state.agent", "(0, 1, 2)"]),
        ((0, 1), ((0, 0), (1, 1)), -1, ["state.step_count", "-1"]),
    ],
)
def test_bad_episode_state(agent, objects, step_count, words):
    with pytest.raises(ValueError) as error:
        EpisodeState(agent, objects, np.zeros((5, 5), dtype=bool), step_count)
    assert_names(error, *words)


def test_numpy_integer_positions_are_fine():
    state = EpisodeState((np.int64(0), np.int32(1)), ((0, 0), (1, 1)), np.zeros((5, 5), dtype=bool))
    assert state.agent == (0, 1) and type(state.agent[0]) is int


def test_registering_a_taken_id_is_refused():
    builtin = gym.spec(ENV)
    layout = GridLayout.open(3, terminals=(TerminalType("gem", True),))
    with pytest.raises(ValueError) as error:
        register_oversight_env(ENV, layout)
    assert_names(error, f"env_id={ENV!r}", "already registered", "replace=True")
    assert gym.spec(ENV) is builtin  # the built-in is untouched
    register_oversight_env("TestBad/Replaced-v0", layout)
    try:
        register_oversight_env("TestBad/Replaced-v0", GridLayout.open(4, terminals=layout.terminals), replace=True)
        assert gym.make("TestBad/Replaced-v0").unwrapped.layout.width == 4
    finally:
        gym.registry.pop("TestBad/Replaced-v0")


@pytest.mark.parametrize(
    "env_id,defaults,words",
    [
        ("not an id!", {}, ["env_id='not an id!'", "Malformed"]),
        (7, {}, ["env_id=7", "a string"]),
        ("TestBad/Defaults-v0", {"colour": 1}, ["colour=1", "no such keyword argument"]),
        ("TestBad/Defaults-v0", {"max_steps": 0}, ["max_steps=0"]),
    ],
)
def test_bad_registration_arguments(env_id, defaults, words):
    with pytest.raises(ValueError) as error:
        register_oversight_env(env_id, GridLayout.open(3, terminals=(TerminalType("gem", True),)), **defaults)
    assert_names(error, *words)
    assert env_id not in gym.registry  # nothing half-registered


GEM, TRAP = TerminalType("gem", True, symbol="*"), TerminalType("trap", False, symbol="T")


@pytest.mark.parametrize(
    "rows,terminals,words",
    [
        (("...",) * 3, (TRAP,), ["terminals=['trap']", "at least one intended"]),
        (("...",) * 3, (GEM, TerminalType("gem", False, symbol="g")), ["['gem', 'gem']", "names must be unique"]),
        (("...",) * 3, (GEM, TerminalType("trap", False, symbol="*")), ["['*', '*']", "symbols must be unique", "symbol="]),
        ((".#..", ".#.."), (GEM, TRAP), ["rows", "connected", "(2, 0) cannot be reached from (0, 0)"]),
        ("....", (GEM,), ["rows='....'", "sequence of strings"]),
        ((b"...", b"..."), (GEM,), ["rows", "sequence of strings"]),
        (("...",) * 3, GEM, ["terminals=TerminalType", "sequence of TerminalType"]),
        (("...",) * 3, ("gem",), ["terminals=('gem',)", "sequence of TerminalType"]),
    ],
)
def test_bad_layout_structure(rows, terminals, words):
    with pytest.raises(ValueError) as error:
        GridLayout(rows=rows, terminals=terminals)
    assert_names(error, *words)


def test_a_layout_needs_no_proxy():
    assert GridLayout(rows=("...",) * 3, terminals=(GEM,)).num_objects == 1


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"intended": "yes"}, ["intended='yes'", "True", "False"]),
        ({"symbol": "#"}, ["symbol='#'", "other than"]),
        ({"name": 3}, ["name=3"]),
    ],
)
def test_bad_terminal_type_values(kwargs, words):
    with pytest.raises(ValueError) as error:
        TerminalType(**{"name": "gem", "intended": True, **kwargs})
    assert_names(error, *words)


def test_bad_twin_arguments():
    from oversight_env import BatchedOversightEnv, OversightConfig

    layout = GridLayout.open(3, terminals=(GEM,))
    for args, words in [
        (("layout", OversightConfig(), 4), ["layout='layout'", "GridLayout"]),
        ((layout, {"oversight_prob": 0.5}, 4), ["config=", "OversightConfig"]),
    ]:
        with pytest.raises(ValueError) as error:
            BatchedOversightEnv(*args)
        assert_names(error, *words)
    with pytest.raises(ValueError) as error:
        make_batched(ENV, 4, seed=-1)
    assert_names(error, "seed=-1", ">= 0")
    twin = make_batched(ENV, 4, seed=0)
    with pytest.raises(ValueError) as error:
        twin.set_state(4, twin.get_state(0))
    assert_names(error, "index=4", "[0, 4)")
