"""Resume at random points: a run killed anywhere (in an update, in an evaluation, while writing a
checkpoint), once or twice, then started again, ends exactly where the uninterrupted run ends.

Checkpoints and evaluations here fall on DIFFERENT schedules (an evaluation every 3 updates, a
checkpoint every 2, and a shortened last update), so a checkpoint taken between evaluations must
hold the weights trained so far (the trainer keeps its members' weights stacked and copies them
into each member's network only when asked), and a kill between a checkpoint and the next
evaluation must lose nothing. Properties pinned, for one member and for two at two oversight levels:
- after each kill the checkpoint on disk is the last one the schedule had reached;
- a resumed run trains only the updates after its checkpoint (it continues; it never starts over);
- the resumed run's final weights, optimizer, generator, environments and method state,
  early stopping's best.pt, eval.json and every tensorboard scalar equal the uninterrupted run's;
- a checkpoint is never on disk before the events it covers: at the moment it is written, the
  events on disk are exactly the run's events up to its step.
The kill points are drawn by a seeded generator from the points an uninterrupted run passes.
"""

import functools
import json
import math
import random
from pathlib import Path

import pytest
import torch
from tensorboard.summary.writer import event_file_writer

import agents.evaluator as evaluator
import agents.lean_trainer as lean_trainer
from agents.config import TrainConfig
from agents.files import load_checkpoint
from agents.train import train, train_members
from tests.test_agents import scalars

BATCH = 16 * 8
TINY = dict(num_envs=16, rollout_steps=8, hidden=32, bf16=False, device="cpu", oversight_prob=0.5,
            steps=6 * BATCH + 80, eval_every_steps=3 * BATCH, checkpoint_every_steps=2 * BATCH,
            eval_episodes=32, final_eval_episodes=32)
TOTAL = TINY["steps"]
# Every point an uninterrupted run passes, as (environment steps trained, hook), in the order it
# passes them: at each step the evaluation comes first, then the checkpoint, then the next update.
EVALUATION, CHECKPOINT, UPDATE = 1, 2, 3
STEPS = [*range(0, TOTAL, BATCH), TOTAL]
POINTS = sorted([(s, UPDATE) for s in STEPS[:-1]]
                + [(s, EVALUATION) for s in STEPS if s and (s % TINY["eval_every_steps"] == 0 or s == TOTAL)]
                + [(s, CHECKPOINT) for s in STEPS if s and (s % TINY["checkpoint_every_steps"] == 0 or s == TOTAL)])


class Killed(BaseException):
    """The simulated kill (a BaseException, as KeyboardInterrupt: nothing in the run catches it)."""


class Killer:
    """Patches the hooks of an update, an evaluation and a checkpoint to raise `Killed` when the run
    reaches `point`; records the run's progress (environment steps trained) and its loggers
    (tensorboard and `metrics.jsonl`), which a kill leaves open."""

    def __init__(self, patch, update_module, update_name):
        self.point, self.steps, self.writers, self.updates = None, 0, [], 0
        real_update, real_evaluation = getattr(update_module, update_name), lean_trainer.training_evaluations
        real_save, real_after_update = lean_trainer.save_atomic, lean_trainer.LeanRun.after_update
        real_logger = lean_trainer.RunLogger
        killer = self

        def update(*args, **kwargs):
            self.check(UPDATE)
            self.updates += 1
            return real_update(*args, **kwargs)

        def training_evaluations(*args, **kwargs):
            self.check(EVALUATION)
            return real_evaluation(*args, **kwargs)

        def save_atomic(obj, path):
            if path.name == "checkpoint.pt":
                self.check(CHECKPOINT)
            return real_save(obj, path)

        def after_update(run, *args, **kwargs):
            due = real_after_update(run, *args, **kwargs)
            self.steps = run.env_steps
            return due

        class Logger(real_logger):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                killer.writers.append(self)

        patch.setattr(update_module, update_name, update)
        patch.setattr(lean_trainer, "training_evaluations", training_evaluations)
        patch.setattr(lean_trainer, "save_atomic", save_atomic)
        patch.setattr(lean_trainer.LeanRun, "after_update", after_update)
        patch.setattr(lean_trainer, "RunLogger", Logger)

    def check(self, hook):
        if (self.steps, hook) == self.point:
            raise Killed

    def attempt(self, run, dirs, point):
        """`run()` from the checkpoints in `dirs`, killed at `point` (None: run to the end)."""
        steps = {load_checkpoint(d / "checkpoint.pt")["state"]["env_steps"] if (d / "checkpoint.pt").exists() else 0
                 for d in dirs}
        assert len(steps) == 1
        self.steps, self.point, self.writers, self.updates = steps.pop(), point, [], 0
        # A resumed run continues from its checkpoint: it trains the updates after it, none before.
        due = [p for p in POINTS if p[1] == UPDATE and (self.steps, 0) <= p and (point is None or p < point)]
        if point is None:
            result = run()
            assert self.updates == len(due), f"resumed at {self.steps}: {self.updates} updates, expected {len(due)}"
            return result
        with pytest.raises(Killed):
            run()
        assert self.updates == len(due), f"resumed at {self.steps}: {self.updates} updates, expected {len(due)}"
        for writer in self.writers:  # the dead run's points reach the disk, those after its checkpoint too
            writer.close()
        return None


def last_checkpoint_before(point):
    """The step of the checkpoint on disk after a kill at `point`."""
    return max([0] + [s for s, hook in POINTS if hook == CHECKPOINT and (s, hook) < point])


def kill_chain(seed, kills=2, first_after=(0, 0), first_before=(TOTAL + 1, 0)):
    """`kills` kill points drawn by `seed`: each among the points the run passes after resuming from
    the previous kill's checkpoint (the first between `first_after` and `first_before`)."""
    rng, chain = random.Random(seed), []
    point = rng.choice([p for p in POINTS if first_after < p < first_before])
    for _ in range(kills):
        chain.append(point)
        resumed_at = (last_checkpoint_before(point), UPDATE - 1)  # the resumed run's first point: its next update
        point = rng.choice([p for p in POINTS if p > resumed_at])
    return chain


def run_state(d: Path):
    """What a finished run directory holds, for comparison."""
    saved = load_checkpoint(d / "checkpoint.pt")
    best = load_checkpoint(d / "best.pt") if (d / "best.pt").exists() else None
    report = json.loads((d / "eval.json").read_text())
    return {"model": saved["model"], "optimizer": saved["optimizer"]["state"], "generator": saved["generator"],
            "twin": saved["twin"], "state": saved["state"], "carry": saved["carry"],
            "best": None if best is None else (best["env_steps"], best["model"]),
            "report": json.dumps(report["variants"]), "env_steps": report["env_steps"], "scalars": scalars(d)}


def same(a, b, path=""):
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif hasattr(a, "net") and hasattr(a, "fits"):  # a reward model
        def parts(model):
            return {**{k: v for k, v in vars(model).items() if k not in ("net", "optimizer")},
                    "net": model.net.state_dict(), "optimizer": model.optimizer.state_dict()["state"]}

        same(parts(a), parts(b), path)
    elif type(a).__module__ == "agents.trajectories":  # what a reward model keeps of running episodes
        assert type(b) is type(a), path
        same(vars(a), vars(b), path)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, path


_REFERENCES: dict = {}


@pytest.fixture(autouse=True)
def _a_small_window_metric(monkeypatch):
    """The final evaluation's published window metric on 32 environments, not 512: the same in
    every run of this file (the uninterrupted references included), and 16 times cheaper."""
    real = evaluator.member_paper_window_returns
    monkeypatch.setattr(evaluator, "member_paper_window_returns", functools.partial(real, num_envs=32))


def reference(tmp_path_factory, name, run_it):
    """The uninterrupted run of `name`, once per session."""
    if name not in _REFERENCES:
        _REFERENCES[name] = run_it(tmp_path_factory.mktemp(name))
    return _REFERENCES[name]


# method: (its settings, the seed of its kill points)
LEAN = {"naive_early_stopping": ({"oversight_prob": 1.0}, 16), "routing_gate_replay": ({}, 13),
        "reward_model": ({"algorithm": "ppo"}, 11), "routing_full_labels": ({}, 17),
        "reward_model_trajectory": ({}, 19)}
LEAN_CHAINS = {method: kill_chain(seed) for method, (_, seed) in LEAN.items()}


@pytest.mark.parametrize("method,chain", LEAN_CHAINS.items(),
                         ids=lambda x: "-".join(f"{s}.{h}" for s, h in x) if isinstance(x, list) else x)
def test_a_lean_run_killed_at_random_points_resumes_to_the_uninterrupted_result(
        tmp_path, tmp_path_factory, monkeypatch, method, chain):
    config = TrainConfig(method=method, **{**TINY, **LEAN[method][0]})

    def uninterrupted(d):
        train(config, d, progress=False)
        return run_state(d)

    expected = reference(tmp_path_factory, method, uninterrupted)
    out = tmp_path / "run"
    killer = Killer(monkeypatch, lean_trainer, "update")
    for point in chain:
        killer.attempt(lambda: train(config, out, progress=False), [out], point)
        assert not (out / "eval.json").exists()
        assert load_checkpoint(out / "checkpoint.pt")["state"]["env_steps"] == last_checkpoint_before(point), point
    killer.attempt(lambda: train(config, out, progress=False), [out], None)
    same(run_state(out), expected)
    if method == "naive_early_stopping":
        assert expected["best"] is not None and expected["best"][0] < TOTAL  # best.pt kept earlier weights


POPULATION = {"naive_early_stopping": ({"oversight_prob": 1.0, "algorithm": "ppo"}, 13), "routing": ({}, 15)}
# The first kill after the first checkpoint (taken between evaluations), before the first one taken at an evaluation.
POPULATION_CHAINS = {method: kill_chain(seed, first_after=(2 * BATCH, CHECKPOINT), first_before=(6 * BATCH, CHECKPOINT))
                     for method, (_, seed) in POPULATION.items()}
SEEDS = (0, 1)


@pytest.mark.parametrize("method,chain", POPULATION_CHAINS.items(),
                         ids=lambda x: "-".join(f"{s}.{h}" for s, h in x) if isinstance(x, list) else x)
def test_members_killed_at_random_points_resume_to_the_uninterrupted_result(
        tmp_path, tmp_path_factory, monkeypatch, method, chain):
    settings = {**TINY, **POPULATION[method][0]}
    levels = (settings["oversight_prob"], settings["oversight_prob"] / 2)  # members at two oversight levels
    configs = [TrainConfig(method=method, seed=seed, **{**settings, "oversight_prob": p}) for seed, p in zip(SEEDS, levels)]

    def uninterrupted(d):
        dirs = [d / str(seed) for seed in SEEDS]
        train_members(configs, dirs, progress=False)
        return [run_state(x) for x in dirs]

    expected = reference(tmp_path_factory, f"population_{method}", uninterrupted)
    dirs = [tmp_path / str(seed) for seed in SEEDS]
    killer = Killer(monkeypatch, lean_trainer, "update")
    for point in chain:
        killer.attempt(lambda: train_members(configs, dirs, progress=False), dirs, point)
        for d in dirs:
            assert not (d / "eval.json").exists()
            assert load_checkpoint(d / "checkpoint.pt")["state"]["env_steps"] == last_checkpoint_before(point), point
    killer.attempt(lambda: train_members(configs, dirs, progress=False), dirs, None)
    for d, want in zip(dirs, expected):
        same(run_state(d), want)


def test_the_kill_points_cover_every_hook_and_checkpoints_between_evaluations():
    """The drawn points cover what the schedules make hard: a kill in an update, in an evaluation
    and while a checkpoint is written, and a resume from a checkpoint taken between evaluations."""
    chains = [*LEAN_CHAINS.values(), *POPULATION_CHAINS.values()]
    assert {hook for chain in chains for _, hook in chain} == {UPDATE, EVALUATION, CHECKPOINT}
    for chain in POPULATION_CHAINS.values():
        assert last_checkpoint_before(chain[0]) % TINY["eval_every_steps"] != 0, chain


class HeldUntilFlushed:
    """Tensorboard's asynchronous event writer at its slowest: nothing reaches the file until a
    flush or close asks for it (the real one's thread may lag as far behind as it likes)."""

    def __init__(self, record_writer, max_queue_size=20, flush_secs=120):
        self._writer, self._held, self._closed = record_writer, [], False

    def write(self, bytestring):
        self._held.append(bytestring)

    def flush(self):
        for bytestring in self._held:
            self._writer.write(bytestring)
        self._held = []
        self._writer.flush()

    def close(self):
        if not self._closed:
            self.flush()
            self._writer.close()
            self._closed = True


@pytest.mark.parametrize("trainer", ["lean", "members"])
def test_a_checkpoint_is_written_after_the_events_it_covers_are_on_disk(tmp_path, monkeypatch, trainer):
    real_save, seen = lean_trainer.save_atomic, []

    def save_atomic(obj, path):
        if path.name == "checkpoint.pt":
            seen.append((path.parent, obj["state"]["env_steps"], scalars(path.parent)))
        return real_save(obj, path)

    monkeypatch.setattr(lean_trainer, "save_atomic", save_atomic)
    monkeypatch.setattr(event_file_writer, "_AsyncWriter", HeldUntilFlushed)
    configs = [TrainConfig(method="routing", seed=seed, **TINY) for seed in SEEDS]
    dirs = [tmp_path / str(seed) for seed in SEEDS]
    if trainer == "lean":
        configs, dirs = configs[:1], dirs[:1]
        train(configs[0], dirs[0], progress=False)
    else:
        train_members(configs, dirs, progress=False)
    assert len(seen) == 4 * len(dirs)  # 256, 512, 768 and the end
    for d, step, on_disk in seen:
        everything = scalars(d)
        covered = {tag: [p for p in points if p[0] <= step] for tag, points in everything.items()}
        assert on_disk == {tag: points for tag, points in covered.items() if points}, (d, step)
        assert any(s == step for points in on_disk.values() for s, _ in points)
