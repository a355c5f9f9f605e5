"""The lean trainer: rollout, batch and update on the batched twin, readable top to bottom, for
K members at once.

A member is one run: a seed and an oversight level of one method on one environment, in its own
run directory. `train_members` trains K of them as one program, the shape of PureJaxRL's
`make_train` over a member axis: one twin holds every member's environments (K x N rows, each
member's episodes drawn from its own random streams), one batched forward acts for every member
(`agents.stacked`: the K networks' weights stacked), one optimizer step updates them all. Member
k trains what a lone run of its config trains (K = 1 is a lone run: `train_lean`): its own
environments, actions, PPO minibatches, gradient clipping, evaluations, method state and
checkpoints. Members may differ in seed and oversight level; everything that sets a tensor's
shape or the schedule is shared (`check_members`).

One loop serves every method (`agents.methods`: the trainer calls the method's hooks and never
branches on its name) and both update rules (`agents.losses`: the paper's REINFORCE with a
learned value baseline, or PPO). Each rollout window becomes labels, weights, returns and
advantages in `agents.batch.build_batch`, the function `RoutedPPO` uses too.

`LeanRun` is one member's parts and what happens around each update (logging, evaluations,
checkpoints); `train_members` is the loop.

A run lives in one directory (`agents.run_dir`): its scalars (`agents.logger`: tensorboard events
under `tb/`, rows in `metrics.jsonl`) and `checkpoint.pt`, everything needed to continue exactly
where it stopped (network, optimizer, environments, random generators, the method's state), the
same whatever K. Started again, a run continues from its checkpoint, and its scalars are those an
uninterrupted run logs: what was logged after the checkpoint is purged.

The budget is exact: a method that trains N environment steps runs N // batch full updates and,
if N is not a multiple of the batch, one last update on the first N % batch samples of a
shortened window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from agents.batch import ReturnRule, Rollout, build_batch
from agents.carry import extend, split
from agents.config import TrainConfig, crossed
from agents.evaluator import training_evaluations
from agents.files import load_checkpoint, save_atomic
from agents.logger import RunLogger
from agents.losses import Samples, UpdateSettings, flatten
from agents.methods import ROUTES, get_method
from agents.networks import ActorCritic, planes_shown, sample_actions
from agents.run_dir import CHECKPOINT
from agents.seeding import evaluation_seed, independent_seeds
from agents.member_update import member_optimizer_state, stacked_optimizer_state, update
from agents.stacked import StackedNetworks
from oversight_env import make_batched
from oversight_env.batched import TwinStep
from oversight_env.spec import invalid_argument


def bf16_autocast(config: TrainConfig) -> AbstractContextManager:
    """The forward passes' autocast: bfloat16 when `config.bf16`, else a no-op."""
    return torch.autocast(config.torch_device().type, dtype=torch.bfloat16, enabled=config.bf16)


def return_rule(config: TrainConfig) -> ReturnRule:
    return ReturnRule(config.algorithm, config.gamma, config.gae_lambda, config.bootstrap)


def rollout_buffers(
    shape: tuple[int, ...], obs_shape: tuple[int, ...], device: torch.device, endings: bool = False
) -> dict[str, torch.Tensor]:
    """Empty buffers of a rollout window, each `shape` ((T, B): steps x environments) by item;
    with `endings`, also the last observation of each episode that ended (`Method.sees_endings`)."""
    buf = {name: torch.zeros(*shape, device=device)
           for name in ("rewards", "values", "log_prob", "timeout_values", "true_return")}
    if endings:
        buf["final_obs"] = torch.zeros(*shape, *obs_shape, device=device)
    buf.update(obs=torch.empty(*shape, *obs_shape, device=device),
               actions=torch.empty(*shape, dtype=torch.long, device=device),
               outcome=torch.empty(*shape, dtype=torch.long, device=device),
               **{name: torch.empty(*shape, dtype=torch.bool, device=device) for name in ("done", "truncated", "overseen")})
    return buf


def record_step(
    buf: dict[str, torch.Tensor],
    t: int,
    obs: torch.Tensor,
    actions: torch.Tensor,
    log_prob: torch.Tensor,
    value: torch.Tensor,
    step: TwinStep,
    critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
) -> None:
    """Write step `t` of a rollout window into `buf`: the observation acted on, the action, its log
    probability and the value, and what the environments did (the true return of the episodes,
    for the logs only). With a `critic` (the value of final observations, given their rows), the
    values of the final observations of episodes cut off by the step limit too."""
    buf["obs"][t], buf["actions"][t], buf["log_prob"][t], buf["values"][t] = obs, actions, log_prob, value.float()
    buf["rewards"][t], buf["done"][t], buf["truncated"][t] = step.reward, step.done, step.truncated
    # Methods read outcomes as the overseer reports them: its verdict (spec rule 4), the truth only
    # where it watched and judged right (they never read an unobserved one: tests/test_blindness.py).
    buf["outcome"][t], buf["overseen"][t], buf["true_return"][t] = step.reported, step.overseen, step.true_return
    if "final_obs" in buf:
        buf["final_obs"][t, step.done_indices] = step.final_obs
    if critic is not None and bool(step.truncated.any()):
        timed_out = step.truncated[step.done_indices]
        rows = step.done_indices[timed_out]
        buf["timeout_values"][t, rows] = critic(step.final_obs[timed_out], rows)


def as_rollout(buf: dict[str, torch.Tensor], last_value: torch.Tensor) -> Rollout:
    """A rollout window's buffers as `build_batch` reads them."""
    return Rollout(buf["rewards"], buf["values"], buf["done"], buf["truncated"], buf["outcome"], buf["overseen"],
                   last_value, buf["timeout_values"])


def window_samples(windows: Sequence[dict[str, torch.Tensor]], buf: dict[str, torch.Tensor],
                   bufs: Sequence[dict[str, torch.Tensor]], last_values: torch.Tensor, method: Any, rule: ReturnRule,
                   samples_wanted: int) -> list[Samples]:
    """Each member's samples from its prepared window `windows[k]` (T, N): labels, weights, returns
    and advantages (`build_batch`), flat, the first `samples_wanted` of them. One `build_batch`
    serves every member: it works environment by environment (column by column), so on the
    windows side by side it gives each member's own batch. `buf` is the rollout's buffers
    (T, K x N) and `bufs` each member's columns of them: where no method changed its window
    (`windows[k] is bufs[k]`), `buf` is used as it is."""
    joined = buf
    if any(w is not b for w, b in zip(windows, bufs)):
        joined = {key: torch.cat([w[key] for w in windows], dim=1) for key in windows[0]}
    batch = build_batch(as_rollout(joined, last_values.reshape(-1)), method, rule)
    parts = (joined["obs"], joined["actions"], joined["log_prob"], batch.advantages, batch.returns, batch.labels,
             batch.weights)
    members = len(windows)
    return [flatten(Samples(*(member_columns(x, members)[k] for x in parts)), samples_wanted) for k in range(members)]


def member_columns(x: Any, members: int) -> list:
    """Each member's columns of (T, K x N, ...) buffers: a tensor's, or a dict of them's."""
    if isinstance(x, dict):
        return [dict(zip(x, values)) for values in zip(*(member_columns(v, members) for v in x.values()))]
    return list(x.tensor_split(members, dim=1))


def member_seeds(config: TrainConfig) -> tuple[int, int, int]:
    """A run's independent streams: its environments', its initialisation's, its actions'."""
    env_seed, init_seed, action_seed = independent_seeds(config.seed, 3)
    return env_seed, init_seed, action_seed


class LeanRun:
    """One member of the lean trainer in its run directory: what `train_members` builds for its
    config (the initialised network, the action generator, the method's state, the logger;
    its rows `member` of the shared `twin`), resumed from the directory's checkpoint if it
    has one; and what happens around each update (logging, evaluations, checkpoints). It is also
    what the method's hooks see of the run (`agents.methods.TrainingRun`).

    The optimizer belongs to the caller: a resumed run's saved optimizer state is
    `saved_optimizer` (None for a new run), and `save_checkpoint` takes the state to save.
    """

    def __init__(self, config: TrainConfig, out_dir: Path, twin: Any, member: int = 0):
        self.config, self.out_dir, self.twin, self.member = config, out_dir, twin, member
        self.method = method = get_method(config.method)
        self.device = device = config.torch_device()
        _, init_seed, action_seed = member_seeds(config)
        torch.manual_seed(init_seed)  # initialised on the CPU whatever the device: the same weights everywhere
        self.net = ActorCritic(self.twin.obs_shape, self.twin.n_actions, experts=method.experts, hidden=config.hidden,
                               zero_biases=config.zero_biases,
                               gate_planes=planes_shown(self.twin.plane_names, method.gate_hides),
                               gate_from_policy=method.gate_from_policy).to(device)
        # The global generator as a lone run leaves it after initialising its network: what a hook
        # draws from it (a reward model initialising its classifier) does not depend on the others.
        self.global_random = torch.get_rng_state()
        self.generator = torch.Generator(device).manual_seed(action_seed)  # actions and PPO's minibatches
        self.total_steps = method.training_steps(config.steps, config.oversight_prob)
        self.state: dict[str, Any] = {"env_steps": 0, "method": method.initial_state(self.twin.plane_names)}
        self.saved_optimizer: dict[str, Any] | None = None
        self.carry: dict[str, torch.Tensor] | None = None  # steps waiting for their episode's end (agents.carry)

        checkpoint_path = out_dir / CHECKPOINT
        if checkpoint_path.exists():
            saved = load_checkpoint(checkpoint_path)
            self.net.load_state_dict(saved["model"])
            self.saved_optimizer = saved["optimizer"]
            self.generator.set_state(saved["generator"])
            self.twin.load_member_state_dict(member, saved["twin"])
            self.state = saved["state"]
            self.carry = saved.get("carry")
            if self.carry is not None:
                self.carry = {key: value.to(device) for key, value in self.carry.items()}
        self.env_steps = self.state["env_steps"]

        # Points after the checkpoint's step (after step 0 without one) were logged by a run that
        # died before its next checkpoint: this run logs them again, so every sink drops the old ones.
        self.logger = RunLogger(out_dir, purge_step=self.state["env_steps"] + 1, config=config.to_json())

    @contextmanager
    def own_random(self) -> Iterator[None]:
        """Within the block, the global (CPU) generator is this member's (`global_random`)."""
        torch.set_rng_state(self.global_random)
        try:
            yield
        finally:
            self.global_random = torch.get_rng_state()

    @property
    def finished(self) -> bool:
        return self.state["env_steps"] >= self.total_steps

    def window(self) -> int:
        """The number of samples the next update trains on: a batch, or what is left of the budget."""
        return min(self.config.batch_steps, self.total_steps - self.state["env_steps"])

    def update_settings(self) -> UpdateSettings:
        return UpdateSettings.from_config(self.config, self.state["env_steps"] / self.total_steps)

    def prepared(self, buf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This member's rollout window as its method trains on it (`Method.prepare_window`)."""
        return self.method.prepare_window(self.state["method"], buf)

    def carried_samples(self, buf: dict[str, torch.Tensor], last_value: torch.Tensor, samples_wanted: int) -> Samples:
        """The samples of a prepared window of a method that carries running episodes
        (`agents.carry`): the carried steps come before the window, and only the steps whose
        episode has ended train (the first `samples_wanted` of the window's own); the others wait
        in `carry` for the next window. (Other methods' samples: `window_samples`.)"""
        steps, envs = buf["done"].shape
        valid = torch.arange(steps * envs, device=self.device).view(steps, envs) < samples_wanted
        window, valid = extend(self.carry, buf, valid)
        batch = build_batch(as_rollout(window, last_value), self.method, return_rule(self.config))
        trained, self.carry = split(window, valid)
        return Samples(*(x[trained] for x in (window["obs"], window["actions"], window["log_prob"], batch.advantages,
                                              batch.returns, batch.labels, batch.weights)))


    def log(self, tag: str, value: float) -> None:
        self.logger.log(tag, value, self.env_steps)

    def after_update(
        self,
        samples_wanted: int,
        buf: dict[str, torch.Tensor],
        samples: Samples,
        stats: dict[str, float],
        settings: UpdateSettings,
        seconds: float,
    ) -> tuple[bool, bool]:
        """Count the `samples_wanted` steps trained, tell the method the rollout's episode ends and
        the samples trained on, and log the update; return whether an evaluation and whether a
        checkpoint are due now."""
        before = self.state["env_steps"]
        self.state["env_steps"] = self.env_steps = before + samples_wanted
        ended = buf["done"]
        outcome, overseen = buf["outcome"][ended], buf["overseen"][ended]
        self.method.after_rollout(self.state["method"], outcome, overseen)
        self.method.after_update(self.state["method"], samples.obs, samples.labels)
        for key, value in stats.items():
            self.log(key, value)
        measured = {}  # read from the device at once
        for code, name in ((1, "intended"), (2, "proxy")):
            measured[f"train/p_{name}_overseen"] = (overseen & (outcome == code)).float().mean()
            measured[f"train/p_{name}_unobserved"] = (~overseen & (outcome == code)).float().mean()
        measured["train/p_timeout"] = (outcome == 0).float().mean()
        measured["train/true_return"] = buf["true_return"][ended].mean()
        for code, name in ROUTES:
            measured[f"route/fraction_{name}"] = (samples.labels == code).float().mean()
        measured["route/fraction_kept"] = samples.weights.float().mean()
        for key, value in zip(measured, torch.stack(list(measured.values())).tolist()):
            self.log(key, value)
        self.log("route/samples_trained", len(samples.labels))
        self.log("loss/entropy_coef", settings.ent_coef)
        self.log("speed/steps_per_second", samples_wanted / seconds)
        after, config = self.state["env_steps"], self.config
        return (crossed(before, after, config.eval_every_steps) or self.finished,
                crossed(before, after, config.checkpoint_every_steps) or self.finished)

    def evaluation_seed(self) -> int:
        """The seed of the episodes the periodic evaluation scores now (`agents.seeding`)."""
        return evaluation_seed(self.config.seed, "training_evaluation", self.state["env_steps"])

    def evaluate(self, headline: dict[str, float]) -> None:
        """Log the periodic evaluation's `headline` numbers, then run the method's own evaluation
        (e.g. early stopping's), on `net`."""
        for key, value in headline.items():
            self.log(key, value)
        self.method.at_evaluation(self.state["method"], self)

    def save_checkpoint(self, optimizer_state: dict[str, Any]) -> None:
        """Save everything needed to continue exactly from here, with the optimizer's `optimizer_state`."""
        self.logger.flush()  # the points up to the checkpoint are on disk before it is
        save_atomic({"model": self.net.state_dict(), "network_config": self.net.config, "optimizer": optimizer_state,
                     "generator": self.generator.get_state(), "twin": self.twin.member_state_dict(self.member),
                     "state": self.state,
                     "carry": self.carry},
                    self.out_dir / CHECKPOINT)

    def finish(self) -> ActorCritic:
        """Close the run; `net` holding the method's chosen weights (by default the last ones)."""
        self.logger.close()
        chosen = self.method.final_weights(self.state["method"], self.out_dir)
        if chosen is not None:
            self.net.load_state_dict(load_checkpoint(chosen)["model"])
        return self.net


#: What members of one `train_members` call may differ in.
MEMBER_SETTINGS = ("seed", "oversight_prob")


def check_members(configs: Sequence[TrainConfig], out_dirs: Sequence[Path]) -> None:
    """Refuse, in one line, what cannot train as one program: configs that differ in anything but
    `seed` and `oversight_prob`, or in their budget (the oracle's depends on the oversight level),
    another trainer than the lean one, or not one distinct directory per config."""
    if not configs:
        raise invalid_argument("configs", [], "expected at least one config")
    if len(out_dirs) != len(configs):
        raise invalid_argument("out_dirs", [str(d) for d in out_dirs], f"expected one directory per config ({len(configs)})")
    if len({Path(d).resolve() for d in out_dirs}) != len(out_dirs):
        raise invalid_argument("out_dirs", [str(d) for d in out_dirs], "expected a distinct directory per member")
    settings = [{k: v for k, v in c.to_json().items() if k not in MEMBER_SETTINGS} for c in configs]
    differ = sorted(k for k in settings[0] if any(s[k] != settings[0][k] for s in settings))
    if differ:
        others = f" (they differ in {differ})" if len(differ) > 1 else ""
        raise invalid_argument(differ[0], [s[differ[0]] for s in settings],
                               f"members may differ only in {' and '.join(MEMBER_SETTINGS)}{others}")
    if configs[0].trainer != "lean":
        raise invalid_argument("trainer", configs[0].trainer, "members train with the lean trainer")
    method = get_method(configs[0].method)
    budgets = [method.training_steps(c.steps, c.oversight_prob) for c in configs]
    if len(set(budgets)) > 1:
        raise invalid_argument("oversight_prob", [c.oversight_prob for c in configs],
                               f"{configs[0].method} trains {budgets} steps at these levels; members share a budget")


def build_twin(configs: Sequence[TrainConfig]) -> Any:
    """The one twin of every member's environments: `num_envs` rows per member, each member's
    episodes drawn from its own environment seed, at its method's training oversight."""
    config = configs[0]
    method = get_method(config.method)
    return make_batched(config.env_id, config.num_envs, device=config.torch_device(),
                        seeds=[member_seeds(c)[0] for c in configs],
                        oversight_probs=[method.training_oversight(c.oversight_prob) for c in configs],
                        **{**config.env_kwargs, "reward": method.reward})


def train_members(configs: Sequence[TrainConfig], out_dirs: Sequence[Path],
                  progress: bool = True) -> list[tuple[ActorCritic, int]]:
    """Train `configs` (see `check_members`) as one program, each in its prepared run directory,
    resuming from their checkpoints (which must be at one step); return each member's trained
    network (the method's chosen weights) and the environment steps it trained."""
    out_dirs = [Path(d) for d in out_dirs]
    check_members(configs, out_dirs)
    twin = build_twin(configs)
    runs = [LeanRun(config, out_dir, twin, k) for k, (config, out_dir) in enumerate(zip(configs, out_dirs))]
    at = sorted({run.env_steps for run in runs})
    if len(at) > 1:
        for run in runs:
            run.logger.close()
        raise invalid_argument("out_dirs", [str(d) for d in out_dirs],
                               f"their checkpoints are at different steps {at}; members train in step")
    config, lead, device, method = configs[0], runs[0], runs[0].device, runs[0].method
    K, N, obs_shape = len(runs), config.num_envs, twin.obs_shape
    nets = StackedNetworks([run.net for run in runs])
    optimizer = torch.optim.Adam(nets.params.values(), lr=config.learning_rate, eps=config.adam_eps)
    if lead.saved_optimizer is not None:
        optimizer.load_state_dict(stacked_optimizer_state([run.saved_optimizer for run in runs], out_dirs))
    critic = (lambda final_obs, rows: nets.critic_of_rows(final_obs, rows, N)) if return_rule(config).bootstraps else None
    autocast = bf16_autocast(config)
    levels = sorted({c.oversight_prob for c in configs})
    bar = tqdm(total=lead.total_steps * K, initial=lead.env_steps * K, unit="step", unit_scale=True, disable=not progress,
               desc=f"{config.method} p={','.join(map(str, levels))}" + (f" x{K}" if K > 1 else ""))
    obs = twin.observe()

    while not lead.finished:
        started = time.perf_counter()
        samples_wanted = lead.window()
        T = math.ceil(samples_wanted / N)

        # ---- rollout: T steps of K x N environments, one forward for every member, no gradient
        buf = rollout_buffers((T, K * N), obs_shape, device, method.sees_endings)
        with torch.no_grad(), autocast:
            for t in range(T):
                out = nets(obs.view(K, N, *obs_shape))
                drawn = [sample_actions(out.logits[k], run.generator) for k, run in enumerate(runs)]
                actions, log_prob = torch.cat([a for a, _ in drawn]), torch.cat([p for _, p in drawn])
                step = twin.step(actions)
                record_step(buf, t, obs, actions, log_prob, out.value.reshape(-1), step, critic)
                obs = step.obs
            last_values = nets.critic(obs.view(K, N, *obs_shape))

        # ---- each member's labels, weights, returns, advantages; one update of every member
        bufs = member_columns(buf, K)
        windows = []
        for k, run in enumerate(runs):
            with run.own_random():
                windows.append(run.prepared(bufs[k]))
        if method.carry_running_episodes:  # each member trains a number of samples of its own
            samples = [run.carried_samples(windows[k], last_values[k], samples_wanted) for k, run in enumerate(runs)]
        else:
            samples = window_samples(windows, buf, bufs, last_values, method, return_rule(config), samples_wanted)
        settings = lead.update_settings()
        replays = [method.gate_replay(run.state["method"], run.generator) for run in runs]
        stats = update(nets, optimizer, method, settings, samples, [run.generator for run in runs], autocast,
                       replays if any(r is not None for r in replays) else None)
        bar.update(samples_wanted * K)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the update's kernels are queued, not done: time them too
        seconds = time.perf_counter() - started
        due = []
        for k, run in enumerate(runs):
            with run.own_random():
                due.append(run.after_update(samples_wanted, bufs[k], samples[k], stats[k], settings, seconds))
        if K > 1:
            for run in runs:
                run.log("speed/member_steps_per_second", samples_wanted * K / seconds)

        # ---- the periodic evaluation of every member in one twin (and each method's own, e.g.
        # early stopping's), checkpoints; every member shares the schedule
        if any(evaluate or checkpoint for evaluate, checkpoint in due):
            nets.sync()
        if any(evaluate for evaluate, _ in due):
            headlines = training_evaluations(nets, configs, [run.evaluation_seed() for run in runs], method.evaluate_without)
            bar.set_postfix({name: f"{sum(h[f'eval/{key}'] for h in headlines) / K:.3f}" for name, key in
                             (("return_per_step", "discounted_return_per_step"), ("p_proxy_unobs", "p_proxy_when_unobserved"))})
        optimizer_state = optimizer.state_dict()
        for k, (run, (evaluate, checkpoint)) in enumerate(zip(runs, due)):
            if evaluate:
                with run.own_random():
                    run.evaluate(headlines[k])
            if checkpoint:
                run.save_checkpoint(member_optimizer_state(optimizer_state, k))
    bar.close()
    nets.sync()
    return [(run.finish(), run.env_steps) for run in runs]


def train_lean(config: TrainConfig, out_dir: Path, progress: bool = True) -> tuple[ActorCritic, int]:
    """Train `config` in the prepared run directory `out_dir`, resuming from its checkpoint;
    return the trained network (the method's chosen weights) and the environment steps trained:
    `train_members` with one member."""
    return train_members([config], [out_dir], progress)[0]
