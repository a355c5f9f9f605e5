"""`TrainConfig` validates every setting on construction with a one-line error naming it."""

import dataclasses
import math
import typing

import pytest
import torch

from agents.config import NUMBER_RULES, TrainConfig


@pytest.mark.parametrize(
    "settings,words",
    [
        ({"seed": -1}, ["seed=-1", "an integer in [0, "]),
        ({"seed": 1.0}, ["seed=1.0"]),
        ({"learning_rate": math.inf}, ["learning_rate=inf", "finite"]),
        ({"learning_rate": math.nan}, ["learning_rate=nan", "finite"]),
        ({"gamma": 2}, ["gamma=2", "(0, 1]"]),
        ({"gamma": 0}, ["gamma=0", "(0, 1]"]),
        ({"gae_lambda": 1.5}, ["gae_lambda=1.5", "(0, 1]"]),
        ({"clip_range": 0}, ["clip_range=0", "> 0"]),
        ({"max_grad_norm": -1}, ["max_grad_norm=-1", "> 0 or none"]),
        ({"adam_eps": 0}, ["adam_eps=0", "> 0"]),
        ({"vf_coef": -0.5}, ["vf_coef=-0.5", ">= 0"]),
        ({"gate_coef": math.nan}, ["gate_coef=nan"]),
        ({"ent_coef": "0.1"}, ["ent_coef='0.1'"]),
        ({"steps": True}, ["steps=True", "an integer in [1, "]),
        ({"ppo_minibatches": 0}, ["ppo_minibatches=0"]),
        ({"bf16": "yes"}, ["bf16='yes'", "true or false"]),
        ({"env_kwargs": [1]}, ["env_kwargs=[1]", "mapping"]),
        ({"env_kwargs": {"colour": 1}}, ["colour=1", "no such keyword argument"]),
        ({"env_kwargs": {"oversight_prob": 0.5}}, ["env_kwargs['oversight_prob']=0.5", "oversight_prob setting"]),
        ({"env_kwargs": {"reward": "true"}}, ["env_kwargs['reward']='true'", "method chooses"]),
    ],
)
def test_bad_setting_is_one_line_naming_it(settings, words):
    with pytest.raises(ValueError) as error:
        TrainConfig(**settings)
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message


@pytest.mark.parametrize(
    "settings",
    [{"max_grad_norm": None}, {"ent_coef_final": None}, {"gamma": 1}, {"ent_coef": 0}, {"seed": 0}, {"learning_rate": 1}],
)
def test_edges_of_the_ranges_are_allowed(settings):
    TrainConfig(**settings)


def test_every_numeric_field_has_a_range():
    hints = typing.get_type_hints(TrainConfig)
    numeric = {f.name for f in dataclasses.fields(TrainConfig)
               if {int, float} & {hints[f.name], *typing.get_args(hints[f.name])}}
    assert numeric - {"oversight_prob"} == set(NUMBER_RULES)  # oversight_prob: check_probability


def test_device_auto_is_cuda_only_where_there_is_one_and_never_for_sb3(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert TrainConfig().torch_device() == torch.device("cpu")
    assert TrainConfig(device="cpu").torch_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="device='cuda'.*no CUDA device"):
        TrainConfig(device="cuda").torch_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert TrainConfig().torch_device() == torch.device("cuda")
    assert TrainConfig(device="cpu").torch_device() == torch.device("cpu")
    assert TrainConfig(trainer="sb3", algorithm="ppo").torch_device() == torch.device("cpu")
