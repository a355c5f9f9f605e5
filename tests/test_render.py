"""`oversight render`: GIFs of episodes under scripted and trained policies, for grid and wrapped
environments; and the report's filmstrips."""

import pytest
from PIL import Image

from oversight_cli.main import main
from analysis.render import record, write_gif


def test_a_scripted_policy_plays_and_every_step_is_a_frame(tmp_path):
    episodes, title = record("OversightGrid/Tampering-7x7-v0", episodes=2, policy="nearest", seed=1)
    assert title == "OversightGrid/Tampering-7x7-v0: scripted policy 'nearest'"
    assert len(episodes) == 2 and all(frames[0][1].endswith("start") for frames in episodes)
    assert all(frames[-1][1].split(" (")[0] in ("intended", "proxy") for frames in episodes)  # nearest reaches one
    gif = write_gif(episodes, tmp_path / "a.gif", title)
    with Image.open(gif) as image:
        assert image.n_frames == sum(map(len, episodes))


def test_the_command_renders_a_trained_run_with_an_expert_ablated(tmp_path, capsys):
    from agents.config import TrainConfig
    from agents.train import train

    config = TrainConfig(method="routing", oversight_prob=0.5, steps=512, num_envs=16, rollout_steps=16,
                         eval_every_steps=512, eval_episodes=8, final_eval_episodes=16, checkpoint_every_steps=512)
    train(config, tmp_path / "run", progress=False)
    assert main(["render", str(tmp_path / "run"), "--ablate", "proxy", "--episodes", "2", "--out", str(tmp_path / "r.gif")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "r.png").exists()
    episodes, title = record(tmp_path / "run", episodes=1, ablate="proxy")
    assert title.endswith("routing at 50% oversight, without proxy")
    assert main(["render", str(tmp_path / "run"), "--ablate", "ghst", "--out", str(tmp_path / "x.gif")]) == 2
    assert "ablate='ghst' is invalid: expected one of the run's experts ['intended', 'proxy']" in capsys.readouterr().err


def test_a_wrapped_environment_renders_under_a_random_policy(tmp_path):
    episodes, _ = record("OversightGrid/LavaCrossing-S9N1-v0", episodes=1, policy="random")
    assert episodes[0][0][0].ndim == 3  # RGB frames from MiniGrid's own renderer
    with pytest.raises(ValueError, match=r"^policy='nearest' is invalid: .* has only the 'random' scripted policy"):
        record("OversightGrid/LavaCrossing-S9N1-v0", policy="nearest")


@pytest.mark.parametrize("kwargs,words", [
    ({"episodes": 0}, "episodes=0 is invalid"),
    ({"policy": "best"}, "policy='best' is invalid"),
    ({"ablate": "proxy"}, "ablate='proxy' is invalid: only a trained routed policy"),
])
def test_bad_render_arguments_give_one_line(kwargs, words):
    with pytest.raises(ValueError, match=words):
        record("OversightGrid/DiamondGhost-5x5-v0", **kwargs)
