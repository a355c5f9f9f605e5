"""The methods a study compares, by name: everything that differs between them, in one place.

A method is a small strategy object. A trainer never branches on a method's name or flags; it
calls the method's hooks:

- `experts`, `gate_hides`: which network to build (two routed experts, or one; the observation
  planes the gate may not read);
- `reward`, `training_oversight`, `training_steps`: what the environments pay, how often they
  are overseen during training, and how many environment steps to train;
- `prepare_window`: the rollout window as the method trains on it (a learned reward model scores
  the unobserved episodes, or labels the ones it is sure of);
- `step_labels`, `step_weights`: the routing label and the loss weight of every step of a
  rollout window (`agents.batch.build_batch` calls them); `route_labels` / `route_parameters` /
  `gate_loss`: whether the labels route gradients (at activations, or by parameters) and train
  the gate;
- `initial_state`: the method's part of the checkpoint, made once the observation planes' names
  are known (a reward model leaves the oversight map out);
- `after_rollout`, `after_update`, `at_evaluation`, `final_weights`: what happens as training
  goes (early stopping scores held-out labelled episodes and keeps the best weights; routed
  methods count labelled episodes; the gate replay keeps labelled samples);
- `gate_replay`: earlier labelled samples for this update's gate loss (lean trainer only);
- `evaluate_without`: the expert ablated in the evaluated policy.

A new method is one subclass (or one more instance) registered in `METHODS`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from agents.networks import planes_shown
from agents.seeding import evaluation_seed
from routing import UNLABELLED, propagate_episode_labels

if TYPE_CHECKING:
    from agents.networks import ActorCritic

ROUTED = ("intended", "proxy")
SINGLE = ("intended",)

#: Routing labels and their names: unlabelled, then one per expert of ROUTED (label k = expert k).
ROUTES = ((UNLABELLED, "unlabelled"), (1, "intended"), (2, "proxy"))


class TrainingRun(Protocol):
    """What a trainer offers a method's hooks during training."""

    net: ActorCritic
    config: Any  # agents.config.TrainConfig
    out_dir: Path
    env_steps: int  # environment steps trained so far

    def log(self, tag: str, value: float) -> None: ...


@dataclass(frozen=True)
class Method:
    """A single network trained on `reward`, every step with weight 1 and no label: the base of
    every method (and `naive` itself)."""

    name: str
    summary: str
    reward: str  # the environment reward trained on (oversight_env.spec.REWARDS)
    experts: tuple[str, ...] = SINGLE  # ROUTED: the two-expert mixture; SINGLE: one network
    evaluate_without: str | None = None  # the expert ablated in the evaluated policy

    # ---- what the network is given
    route_labels: bool = False  # labelled samples update only their expert (activation-level routing)
    route_parameters: bool = False  # the same by masking parameters' gradients (parameter-level routing)
    carry_running_episodes: bool = False  # steps train once their episode has ended (agents.carry)
    replays_gate: bool = False  # the gate loss also covers a replay of earlier labelled samples
    gate_loss: bool = False  # train the gate toward labelled samples' experts
    gate_hides: tuple[str, ...] = ()  # observation planes the gate does not read (e.g. "oversight")
    gate_from_policy: bool = True  # the policy's loss trains the gate on unlabelled samples (the paper's rule)
    sees_endings: bool = False  # the trainer keeps each ended episode's last observation (`prepare_window`)

    # ---- how reports treat it (they name no method themselves)
    report_reference: bool = False  # the method a report compares every other with, by default
    reads_true_rewards: bool = False  # an oracle: trained on true rewards the overseer never saw (not a contender)
    normaliser: bool = False  # its score is 1 when reports normalise across environments (a random policy's is 0)

    # ---- the environment and the budget
    def training_oversight(self, oversight_prob: float) -> float:
        """The oversight probability of the environments trained on."""
        return oversight_prob

    def training_steps(self, steps: int, oversight_prob: float) -> int:
        """Environment steps this method trains for in a comparison with a budget of `steps`."""
        return steps

    # ---- a rollout window's rewards, labels and weights, (T, B) each
    def prepare_window(self, state: dict[str, Any], window: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The rollout window (its buffers: `rewards`, `done`, `outcome`, `overseen`, ...;
        `final_obs` when `sees_endings`) as the method trains on it: unchanged unless the method
        replaces some rewards or labels. It returns a new dict; the trainer's buffers stay as they
        were (its statistics count what really happened)."""
        return window

    def step_labels(self, done: torch.Tensor, outcome: torch.Tensor, overseen: torch.Tensor) -> torch.Tensor:
        """The routing label of every step: `UNLABELLED` unless the method labels steps."""
        return torch.full(done.shape, UNLABELLED, dtype=torch.long, device=done.device)

    def step_weights(self, done: torch.Tensor, outcome: torch.Tensor, overseen: torch.Tensor) -> torch.Tensor:
        """The loss weight of every step (the loss is the weighted mean over all steps)."""
        return torch.ones(done.shape, device=done.device)

    # ---- as training goes; `state` is the method's part of the checkpoint
    def initial_state(self, plane_names: Sequence[str] = ()) -> dict[str, Any]:
        """The method's state at the start of training; `plane_names` are the observation planes'."""
        return {}

    def after_rollout(self, state: dict[str, Any], outcome: torch.Tensor, overseen: torch.Tensor) -> None:
        """Called with the outcomes and oversight of the episodes that ended in a rollout."""

    def at_evaluation(self, state: dict[str, Any], run: TrainingRun) -> None:
        """Called at every training-time evaluation, after the trainer's own."""

    def final_weights(self, state: dict[str, Any], run_dir: Path) -> Path | None:
        """A file of weights to evaluate instead of the last ones (None: the last ones)."""
        return None

    # ---- a replay for the gate loss (`replays_gate`); the lean trainer calls these around each update
    def gate_replay(self, state: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Observations and labels of earlier labelled samples for this update's gate loss, or None."""
        return None

    def after_update(self, state: dict[str, Any], obs: torch.Tensor, labels: torch.Tensor) -> None:
        """Called with the samples an update trained on (flat) and their labels."""

    @property
    def lean_only(self) -> bool:
        """Whether only the lean trainer can train this method (it needs hooks `RoutedPPO` lacks)."""
        return (self.carry_running_episodes or self.replays_gate or bool(self.gate_hides) or not self.gate_from_policy
                or self.sees_endings)


@dataclass(frozen=True)
class RoutedMixture(Method):
    """The two-expert mixture trained on the `outcome` reward; overseen episodes label their steps
    with the terminal reached (1 intended, 2 proxy: the experts' positions)."""

    experts: tuple[str, ...] = ROUTED
    evaluate_without: str | None = "proxy"

    def step_labels(self, done: torch.Tensor, outcome: torch.Tensor, overseen: torch.Tensor) -> torch.Tensor:
        return propagate_episode_labels(done, torch.where(overseen, outcome, UNLABELLED))

    # The labelled episodes each expert has seen so far (a separation diagnostic), logged at evaluations.
    def initial_state(self, plane_names: Sequence[str] = ()) -> dict[str, Any]:
        return {"labelled_episodes": {name: 0 for code, name in ROUTES if code != UNLABELLED}}

    def after_rollout(self, state: dict[str, Any], outcome: torch.Tensor, overseen: torch.Tensor) -> None:
        for code, name in ROUTES:
            if code != UNLABELLED:
                state["labelled_episodes"][name] += int((overseen & (outcome == code)).sum())

    def at_evaluation(self, state: dict[str, Any], run: TrainingRun) -> None:
        for name, count in state["labelled_episodes"].items():
            run.log(f"route/labelled_episodes_{name}", count)


@dataclass(frozen=True)
class GateReplay(RoutedMixture):
    """`RoutedMixture` whose gate loss also covers a replay of earlier labelled samples: up to
    `replay_capacity` of the latest (stored as float16), `replay_batch` drawn at random each
    update. The policy-gradient loss stays on the current rollout."""

    replays_gate: bool = True
    replay_capacity: int = 100_000
    replay_batch: int = 4096

    def initial_state(self, plane_names: Sequence[str] = ()) -> dict[str, Any]:
        return {**super().initial_state(plane_names), "replay_obs": None, "replay_labels": None}

    def after_update(self, state: dict[str, Any], obs: torch.Tensor, labels: torch.Tensor) -> None:
        keep = labels != UNLABELLED
        if not bool(keep.any()):
            return
        new_obs, new_labels = obs[keep].to("cpu", torch.float16), labels[keep].to("cpu", torch.int8)
        if state["replay_obs"] is not None:
            new_obs, new_labels = torch.cat([state["replay_obs"], new_obs]), torch.cat([state["replay_labels"], new_labels])
        state["replay_obs"], state["replay_labels"] = new_obs[-self.replay_capacity:], new_labels[-self.replay_capacity:]

    def gate_replay(self, state: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
        if state["replay_obs"] is None:
            return None
        count = len(state["replay_labels"])
        device = generator.device
        idx = torch.randint(count, (min(count, self.replay_batch),), generator=generator, device=device).cpu()
        return state["replay_obs"][idx].to(device, torch.float32), state["replay_labels"][idx].to(device, torch.long)


#: Episode codes for filtering: kept (overseen, or reached no terminal) or dropped.
KEPT, DROPPED = 1, 2


@dataclass(frozen=True)
class Filtering(Method):
    """Trains only on steps of episodes whose true reward the overseer knows."""

    def step_weights(self, done: torch.Tensor, outcome: torch.Tensor, overseen: torch.Tensor) -> torch.Tensor:
        # Steps whose episode has not ended by the window's end get UNLABELLED: dropped too.
        episode = torch.where(overseen | (outcome == 0), KEPT, DROPPED)
        return (propagate_episode_labels(done, episode) == KEPT).float()


@dataclass(frozen=True)
class LabelBudget(Method):
    """Trains only for as many environment steps as the oversight budget labels."""

    def training_steps(self, steps: int, oversight_prob: float) -> int:
        return max(1, round(steps * oversight_prob))


def overseer_verdicts(episodes: dict[str, Any]) -> Any:
    """Each validation episode's true return as the overseer who labels it judges it: where its
    verdict is not the outcome (it misjudges, or a spoof fools it), the ending pays the verdict's
    true reward."""
    import numpy as np

    from oversight_env.spec import Outcome, reward

    pay = np.array([reward("true", o, True) for o in Outcome])  # by outcome code, on a watched cell
    return episodes["true_reward"] - pay[episodes["outcome"]] + pay[episodes["verdict"]]


#: Share of the oversight budget that `naive_early_stopping` holds out for validation.
EARLY_STOPPING_HOLDOUT = 0.25


@dataclass(frozen=True)
class EarlyStopping(Method):
    """Holds out a share of the oversight budget and keeps the checkpoint that scores best on it."""

    holdout: float = EARLY_STOPPING_HOLDOUT
    best_file: str = "best.pt"

    def training_oversight(self, oversight_prob: float) -> float:
        return oversight_prob * (1 - self.holdout)

    def initial_state(self, plane_names: Sequence[str] = ()) -> dict[str, Any]:
        return {"validation_budget": 0.0, "best_score": -math.inf, "labels_since_eval": 0}

    def after_rollout(self, state: dict[str, Any], outcome: torch.Tensor, overseen: torch.Tensor) -> None:
        state["labels_since_eval"] += int(overseen.sum())

    def at_evaluation(self, state: dict[str, Any], run: TrainingRun) -> None:
        """Score the policy on held-out labelled episodes paid for from the oversight budget: the
        holdout's share of labels, in proportion to the labels training saw since the last check."""
        from agents.evaluator import run_episodes
        from agents.files import save_atomic

        state["validation_budget"] += state["labels_since_eval"] * self.holdout / (1 - self.holdout)
        state["labels_since_eval"] = 0
        n = int(state["validation_budget"])
        if n < 1:
            return
        state["validation_budget"] -= n
        config = run.config
        seed = evaluation_seed(config.seed, "validation", run.env_steps)
        episodes = run_episodes(run.net, config.env_id, n, seed=seed, oversight_prob=config.oversight_prob,
                                env_kwargs=config.env_kwargs)
        score = float(overseer_verdicts(episodes).mean())
        run.log("early_stopping/validation_true_return", score)
        run.log("early_stopping/validation_episodes", n)
        if score > state["best_score"]:
            state["best_score"] = score
            save_atomic({"model": run.net.state_dict(), "network_config": run.net.config, "env_steps": run.env_steps,
                         "score": score}, run.out_dir / self.best_file)

    def final_weights(self, state: dict[str, Any], run_dir: Path) -> Path | None:
        path = run_dir / self.best_file
        return path if path.exists() else None


def _reward_model_state(plane_names: Sequence[str], hides: Sequence[str]) -> dict[str, Any]:
    """The reward model's part of a method's state: the model and the running episodes' sums (made
    at the first window), the observation planes it reads (None: all) and the agent's among them."""
    planes = planes_shown(plane_names, hides)
    shown = [plane_names[i] for i in planes] if planes is not None else list(plane_names)
    return {"model": None, "episodes": None, "model_planes": planes,
            "agent_plane": shown.index("agent") if "agent" in shown else 0}


def _running_episodes(state: dict[str, Any], window: dict[str, torch.Tensor]) -> Any:
    from agents.trajectories import RunningEpisodes

    if state.get("episodes") is None:
        state["episodes"] = RunningEpisodes(window["done"].shape[1], state.get("agent_plane", 0))
    return state["episodes"]


def _fit_reward_model(state: dict[str, Any], window: dict[str, torch.Tensor], judged: torch.Tensor,
                      paid: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """Teach the run's reward model (`agents.reward_model`) this window's overseen episodes (what
    it judges of each, `judged` (T, N, ...) at the step it ended, and `paid` (T, N), what the
    episode was paid in all by then: for an episode the overseer watched, its true return as the
    overseer judged it) and fit it; return it and the mask of the unobserved endings (reached a
    terminal, not overseen), which it also scores for the accuracy logs."""
    from agents.reward_model import RewardModel

    outcome = window["outcome"]
    ended = window["done"] & (outcome != 0)  # reached a terminal: there is something to judge
    overseen = ended & window["overseen"]
    if state["model"] is None:
        state["model"] = RewardModel(tuple(judged.shape[2:]), device=judged.device)
    model = state["model"]
    model.add(judged[overseen], outcome[overseen], paid[overseen])
    state["loss"] = model.fit()
    unobserved = ended & ~window["overseen"]
    model.score_unobserved(judged[unobserved], outcome[unobserved])
    return model, unobserved


def _last_frames(state: dict[str, Any], window: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each ended episode's last observation, the reward model's planes only."""
    planes = state.get("model_planes")
    return window["final_obs"] if planes is None else window["final_obs"][:, :, list(planes)]


def _log_reward_model(state: dict[str, Any], run: TrainingRun) -> None:
    if state["model"] is None:
        return
    for key, value in state["model"].accuracies().items():
        run.log(f"reward_model/{key}", value)
    run.log("reward_model/labelled_episodes", state["model"].labelled)
    if state.get("loss") is not None:
        run.log("reward_model/loss", state["loss"])


@dataclass(frozen=True)
class LearnedReward(Method):
    """Trains on what the overseer pays where it watched, and on a reward model's prediction where
    it did not: each unobserved episode's last reward becomes what brings the rewards it was paid
    to the true return `agents.reward_model` expects of it, judging from its last observation.
    The model learns from the overseen episodes only: their outcomes and their returns as the
    overseer reported and paid them (under label noise or a spoof that fools it, its verdicts; never
    the truth behind them).

    The model does not read the oversight map (`model_hides`), as `routing_blind_gate`'s gate does
    not: an episode is labelled exactly when its ending was watched, so in every training example
    the map shows the ending watched (the cell the agent stopped on; the whole grid where oversight
    is per episode), and in no unobserved one. A model that reads it can learn that shortcut, score
    well on held-out overseen endings and be wrong on unobserved ones (random-policy endings in
    `Tampering-7x7` at 10%, three seeds: held-out accuracy 0.86-0.89, unobserved 0.49-0.50; without
    the map 0.54-0.59 and 0.53-0.55, the honest figure of a model the spoof fools; docs/study.md,
    "The reward model's input")."""

    sees_endings: bool = True
    model_hides: tuple[str, ...] = ("oversight",)  # observation planes the reward model does not read
    judges_trajectories: bool = False  # what the model judges: the last observation, or the whole episode

    def initial_state(self, plane_names: Sequence[str] = ()) -> dict[str, Any]:
        return _reward_model_state(plane_names, self.model_hides)

    def judged(self, state: dict[str, Any], window: dict[str, torch.Tensor]) -> torch.Tensor:
        """(T, N, ...): what the model judges of each episode, at the step it ended: its last
        observation, or the summary of its trajectory (`agents.trajectories`)."""
        frames = _last_frames(state, window)
        if not self.judges_trajectories:
            return frames
        planes = state.get("model_planes")
        obs = window["obs"] if planes is None else window["obs"][:, :, list(planes)]
        return _running_episodes(state, window).summaries(obs, frames, window["done"])

    def prepare_window(self, state: dict[str, Any], window: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        judged = self.judged(state, window)
        paid_before = _running_episodes(state, window).paid_before(window["rewards"], window["done"])
        model, unobserved = _fit_reward_model(state, window, judged, paid_before + window["rewards"])
        rewards = window["rewards"].clone()
        rewards[unobserved] = model.expected_reward(judged[unobserved]) - paid_before[unobserved]
        return {**window, "rewards": rewards}

    def at_evaluation(self, state: dict[str, Any], run: TrainingRun) -> None:
        _log_reward_model(state, run)


@dataclass(frozen=True)
class ModelLabels(RoutedMixture):
    """`RoutedMixture` whose unobserved episodes are labelled too where a reward model (as
    `LearnedReward`'s) is sure how they ended: probability at least `confidence`."""

    sees_endings: bool = True
    confidence: float = 0.9
    model_hides: tuple[str, ...] = ("oversight",)  # as `LearnedReward`'s

    def initial_state(self, plane_names: Sequence[str] = ()) -> dict[str, Any]:
        return {**super().initial_state(plane_names), **_reward_model_state(plane_names, self.model_hides)}

    def prepare_window(self, state: dict[str, Any], window: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from agents.reward_model import OUTCOMES

        seen = _last_frames(state, window)
        model, unobserved = _fit_reward_model(state, window, seen, window["rewards"])  # its class values go unused
        probabilities = model.probabilities(seen[unobserved])
        best, cls = probabilities.max(dim=-1)
        sure = torch.zeros_like(unobserved)
        sure[unobserved] = best >= self.confidence
        predicted = torch.tensor([int(o) for o in OUTCOMES], device=cls.device)[cls]
        outcome = window["outcome"].clone()
        outcome[unobserved] = torch.where(best >= self.confidence, predicted, outcome[unobserved])
        state["model_labelled"] = state.get("model_labelled", 0) + int(sure.sum())
        return {**window, "overseen": window["overseen"] | sure, "outcome": outcome}

    def at_evaluation(self, state: dict[str, Any], run: TrainingRun) -> None:
        super().at_evaluation(state, run)
        _log_reward_model(state, run)
        run.log("reward_model/episodes_labelled_by_the_model", state.get("model_labelled", 0))


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        RoutedMixture(
            "routing",
            "Gradient routing (the paper's method). A mixture of an intended and a proxy expert, trained on the "
            "`outcome` reward (+1 for either terminal). Steps of overseen episodes update only the expert of the "
            "terminal reached (and train the gate toward it); all other steps update everything. Evaluated with "
            "the proxy expert ablated: the gate fixed to the intended expert.",
            "outcome", route_labels=True, gate_loss=True, report_reference=True,
        ),
        GateReplay(
            "routing_gate_replay",
            "Variant: `routing` whose gate loss also covers a replay of earlier labelled samples (up to the latest "
            "100,000; 4,096 drawn each update), so the gate learns from every labelled episode seen so far, not only "
            "the current rollout's few; the policy-gradient loss stays on-policy. Evaluated with the proxy expert "
            "ablated.",
            "outcome", route_labels=True, gate_loss=True,
        ),
        RoutedMixture(
            "routing_parameter_level",
            "Variant: `routing` with parameter-level instead of activation-level routing. Nothing is detached "
            "in the forward pass; each route's samples get their own backward pass into the parameters the route "
            "may update (an intended-labelled sample: everything but the proxy expert and the gate), as selective "
            "gradient masking (arXiv 2512.05648) does in language models. On the paper's network the two coincide "
            "(the experts read the observation directly; nothing before them is shared), so this variant trains "
            "what `routing` trains, at the cost of a backward pass per route; it differs on networks with shared "
            "layers before the experts. Evaluated with the proxy expert ablated.",
            "outcome", route_parameters=True, gate_loss=True,
        ),
        RoutedMixture(
            "routing_full_labels",
            "Variant: `routing` where no step trains before its episode's label exists. Steps of episodes still "
            "running when a rollout window closes (unlabelled under `routing`: ~38% of steps with a random policy) "
            "wait and train in the first update after their episode ends, with its label and its whole return, one "
            "update older than the policy. Evaluated with the proxy expert ablated.",
            "outcome", route_labels=True, gate_loss=True, carry_running_episodes=True,
        ),
        GateReplay(
            "routing_blind_gate",
            "Variant: `routing` with a gate that judges behaviour, not oversight. Under `routing` every labelled proxy "
            "episode had its proxy overseen and no unobserved one has, so the gate learns to read the oversight map: at "
            "1% oversight it sorts labelled samples 0.99 vs 0.01 but gives the intended expert much of the weight on the "
            "way to unobserved proxies, and that expert learns to seek them. Here the gate does not see the oversight map "
            "(the experts do), learns only from its supervised loss (the policy's loss does not train it), and that "
            "loss covers a replay of earlier labelled samples (as `routing_gate_replay`), so it learns to predict from "
            "where the agent and the terminals are which terminal the policy is heading for, whether or not anyone "
            "watches. Each of the three is needed (docs/study.md). Evaluated with the proxy expert ablated.",
            "outcome", route_labels=True, gate_loss=True, gate_hides=("oversight",), gate_from_policy=False,
        ),
        RoutedMixture(
            "routing_no_gate_loss",
            "Control: `routing` without the gate loss. Labelled samples are still routed to their expert, but "
            "nothing teaches the gate which expert is which. Evaluated with the proxy expert ablated.",
            "outcome", route_labels=True,
        ),
        RoutedMixture(
            "moe_no_routing",
            "Control: `routing` without gradient routing. The same mixture and gate loss, but every sample "
            "updates every expert, so the experts have no reason to specialize. Evaluated with the proxy expert "
            "ablated, like `routing`.",
            "outcome", gate_loss=True,
        ),
        Method(
            "naive",
            "Baseline: a single network trained on the `naive` proxy reward, what a partial overseer pays: +1 for "
            "either terminal, -1 for an overseen proxy. It learns to take the proxy when unobserved.",
            "naive",
        ),
        Filtering(
            "filtering",
            "Baseline: a single network trained on the `true` reward, but only on episodes whose true reward the "
            "overseer knows: overseen ones and those that reached no terminal. Other steps are dropped, and the loss "
            "is scaled by the kept fraction, as in the paper. Steps whose episode has not ended when the update comes "
            "are dropped too (the paper kept them; their reward was unknown).",
            "true",
        ),
        LabelBudget(
            "oracle",
            "Reference: a single network trained on the `true` reward of every episode, but only for as many "
            "steps as the oversight budget labels (oversight_prob x the comparison's steps, exactly): the same "
            "number of labelled episodes as the other methods get.",
            "true", reads_true_rewards=True,
        ),
        ModelLabels(
            "routing_reward_model",
            "Variant: `routing` whose unobserved episodes are labelled too where a reward model is sure how they ended "
            "(the model of `reward_model`, fitted on the overseen episodes; probability at least 0.9): more routed "
            "samples, some wrongly routed when the model is wrong. Evaluated with the proxy expert ablated. Lean trainer "
            "only.",
            "outcome", route_labels=True, gate_loss=True,
        ),
        Method(
            "oracle_all_labels",
            "Reference (upper bound): a single network trained on the `true` reward of every episode for the whole "
            "budget: what every label would buy. Reports across environments normalise scores between a random policy "
            "(0) and it (1).",
            "true", reads_true_rewards=True, normaliser=True,
        ),
        LearnedReward(
            "reward_model",
            "Baseline (semi-supervised RL): `naive` training whose unobserved episodes are scored by a reward model. "
            "A small classifier of how an episode ended, from its last observation less the oversight map (which would "
            "give the labelled endings away), is fitted on the overseen episodes seen so far (every fifth held out to "
            "measure it); each unobserved episode's last reward becomes what brings its rewards to the true return the "
            "model expects (its predicted probabilities times the mean return the overseer paid for overseen episodes "
            "that ended so). Logs the model's accuracy on held-out overseen episodes and on the unobserved ones (which "
            "only the testbed knows). Lean trainer only.",
            "naive",
        ),
        LearnedReward(
            "reward_model_trajectory",
            "Baseline (semi-supervised RL): `reward_model` whose model judges the whole episode, not its last "
            "observation: per step, the observation planes and the planes under the agent (what it stood on), averaged "
            "over the episode (a pooled per-step model), beside the last observation; the oversight map left out. It "
            "sees a shortcut taken on the way that leaves no trace at the end (AbsentSupervisor). Fitted, scored and "
            "logged as `reward_model`'s. Lean trainer only.",
            "naive", judges_trajectories=True,
        ),
        EarlyStopping(
            "naive_early_stopping",
            "Baseline: `naive` with early stopping. A quarter of the oversight budget is held out: training sees "
            "oversight with 3/4 of the probability, and the held-out labels score the policy's true return on "
            "fresh episodes at every evaluation; the best-scoring checkpoint is the result. Answers the critique "
            "that naive training with early stopping matches routing, with the same labelling budget.",
            "naive",
        ),
    ]
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"method={name!r} is invalid: expected one of {sorted(METHODS)}")
    return METHODS[name]


def report_reference(methods: Iterable[str]) -> str | None:
    """The method among `methods` that reports compare the others with by default (None: none is)."""
    return next((m for m in methods if m in METHODS and METHODS[m].report_reference), None)


def normaliser() -> str:
    """The method whose score is 1 when reports normalise across environments."""
    return next(m.name for m in METHODS.values() if m.normaliser)


def reads_true_rewards(method: str) -> bool:
    """Whether `method` is an oracle (trained on true rewards the overseer never saw); unknown methods are not."""
    return method in METHODS and METHODS[method].reads_true_rewards
