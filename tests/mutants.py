"""Mutation check: plant one-line bugs in the code that produces numbers, one at a time, and
check that a test goes red for each. Not collected by pytest (no `test_` prefix); run it by hand:

    python tests/mutants.py [--only SUBSTRING] [--table docs/mutations.md] [--check]

Each mutant replaces one exact snippet of one file (the snippet must occur exactly once), runs
the named test files with `-x`, restores the file, and reports "caught" (a test failed) or
"SURVIVED". The file is restored even when the run is interrupted. Every snippet is checked
against the code before anything runs: a stale one (the code changed under it) is reported as
STALE and the others still run; `--check` only does that check (tests/test_mutants_table.py runs
it with the suite).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGENTS = ["tests/test_batch.py", "tests/test_agents.py"]
TRAINERS = ["tests/test_agents.py", "tests/test_sb3.py"]
SB3 = ["tests/test_sb3.py"]
SWEEP = ["tests/test_report.py", "tests/test_spec.py", "tests/test_sweep.py"]  # fastest first (-x)
CLI = ["tests/test_cli.py"]
POPULATION = ["tests/test_population.py"]
STATISTICS = ["tests/test_statistics.py", "tests/test_report.py"]
DIAGNOSTICS = ["tests/test_diagnostics.py", "tests/test_report.py"]
ZOO = ["tests/test_zoo.py", "tests/test_equivalence.py"]
WRAPPERS = ["tests/test_wrappers.py"]

# (kind of bug, file, original snippet, mutated snippet, test files)
MUTANTS: list[tuple[str, str, str, str, list[str]]] = [
    ("zoo: a proxy tile does not mark the episode", "oversight_env/batched.py",
     "self.marked = self.marked | self._proxy_tile[on]", "self.marked = self.marked", ZOO),
    ("zoo: a chest opens without a key", "oversight_env/batched.py",
     "(~self._needs_key[on] | (self.keys > 0))", "(~self._needs_key[on] | (self.keys >= 0))", ZOO),
    ("zoo: a chest keeps its key", "oversight_env/batched.py",
     "self.keys = self.keys + picked.long() - self._needs_key[on].long()", "self.keys = self.keys + picked.long()", ZOO),
    ("zoo: a hoard pays nothing", "oversight_env/batched.py",
     "reward = reward + torch.where(hoarded, self._hoard_train_reward[column], 0.0)", "reward = reward", ZOO),
    ("zoo: a tile pays again while the agent stays on it", "oversight_env/batched.py",
     "on = torch.where((self.agent != before) & (", "on = torch.where((self.agent >= 0) & (", ZOO),
    ("zoo: tampering leaves the last observation alone", "oversight_env/batched.py",
     "                self._spoof(final_obs, done_indices,", "                0 and self._spoof(final_obs, done_indices,", ZOO),
    ("zoo: pockets the agent cannot reach stay free", "oversight_env/batched.py",
     "walls[done], agent[done], reachable[done] = ~reach[valid], start[valid], reach[valid]",
     "walls[done], agent[done], reachable[done] = drawn[valid], start[valid], reach[valid]",
     ZOO),
    ("zoo: placement regions ignored", "oversight_env/batched.py",
     "            if self._region_prob[i] > 0:", "            if False:", ZOO),
    ("zoo: the test placement keeps the shifted regions", "oversight_env/batched.py",
     "k.region is not None and not (test and k.shifted) else 0.0", "k.region is not None else 0.0", ZOO),
    ("zoo: a supervisor oversees each cell on its own", "oversight_env/batched.py",
     "            return supervised[:, None] & ~walls",
     "            return (torch.rand(n, cells, generator=gen, device=dev) < self.config.oversight_prob) & ~walls", ZOO),
    ("zoo: the agent starts outside its region", "oversight_env/batched.py",
     "self._outside_agent_region = ~mask(layout.agent_region)", "self._outside_agent_region = ~mask(layout.agent_region) & False",
     ZOO),
    ("zoo: a pinned region may be walled off", "oversight_env/batched.py",
     "            valid &= (reach[:, None] & self._pinned_regions).any(dim=2).all(dim=1)\n", "", ZOO),
    ("zoo: an episode's true return carries into the next", "oversight_env/batched.py",
     "        self.true_return = self.true_return.index_put((idx,), torch.zeros_like(agent, dtype=torch.float32))\n", "",
     ZOO),
    ("zoo: MiniGrid's hoard ends as the key's outcome", "oversight_env/grid_env.py",
     "outcome = Outcome.GHOST if self.marked or hoarded else kind.outcome", "outcome = Outcome.GHOST if self.marked else kind.outcome",
     ZOO),
    ("zoo: MiniGrid pays a tile again while the agent stays on it", "oversight_env/grid_env.py",
     "entered = kind is not None and tuple(self.agent_pos) != tuple(before) and (", "entered = kind is not None and (", ZOO),
    ("zoo: the evaluator keeps only the last reward of an episode", "agents/evaluator.py",
     'result["true_reward"][k] += r', 'result["true_reward"][k] = r', ZOO),
    ("zoo: returns-to-go one step short", "agents/evaluator.py",
     "r * (1 - gamma**steps) / (1 - gamma)", "r * (1 - gamma**(steps - 1)) / (1 - gamma)", ZOO),
    ("reward model: unobserved endings keep the overseer's reward", "agents/methods.py",
     'rewards[unobserved] = model.expected_reward(seen[unobserved])', "rewards[unobserved] = rewards[unobserved]",
     ["tests/test_reward_model.py"]),
    ("reward model learns from unobserved endings too", "agents/methods.py",
     '    overseen = ended & window["overseen"]\n', "    overseen = ended\n", ["tests/test_reward_model.py"]),
    ("reward model trains on its held-out endings", "agents/reward_model.py",
     "heldout = (torch.arange(self.labelled, self.labelled + len(obs)) % HELD_OUT_EVERY) == 0",
     "heldout = (torch.arange(self.labelled, self.labelled + len(obs)) % HELD_OUT_EVERY) < 0", ["tests/test_reward_model.py"]),
    ("reward model reads the oversight map", "agents/methods.py",
     'model_hides: tuple[str, ...] = ("oversight",)  # observation planes', "model_hides: tuple[str, ...] = ()  # observation planes",
     ["tests/test_reward_model.py"]),
    ("lean trainer: methods never told the observation planes", "agents/lean_trainer.py",
     "method.initial_state(self.twin.plane_names)", "method.initial_state()", ["tests/test_reward_model.py"]),
    ("report: the reward model's diagnostics never read", "oversight_cli/report.py",
     "{**PER_EVALUATION_DIAGNOSTICS, **REWARD_MODEL_DIAGNOSTICS}.items()", "PER_EVALUATION_DIAGNOSTICS.items()",
     ["tests/test_report.py"]),
    ("report: the reward-model table takes every method's diagnostics", "oversight_cli/report.py",
     'if r["metric"] in wanted:', "if True:", ["tests/test_report.py"]),
    ("aggregate figure: methods in the table's order, not by IQM", "oversight_cli/zoo_figures.py",
     'rows = sorted(rows, key=lambda r: r["iqm"])', "rows = list(rows)", ["tests/test_aggregate.py"]),
    ("environment panels: colours of their own, not the report's", "oversight_cli/zoo_figures.py",
     "colors = colors or method_colors(methods)", "colors = method_colors(methods)", ["tests/test_aggregate.py"]),
    ("aggregate figure: colours of its own, not the report's", "oversight_cli/zoo_figures.py",
     'colors = colors or method_colors(sorted(r["method"] for r in rows))',
     'colors = method_colors(sorted(r["method"] for r in rows))', ["tests/test_aggregate.py"]),
    ("report: curves saved from damaged events", "oversight_cli/report.py",
     "    if not problems:\n        write_json_atomic(saved", "    if True:\n        write_json_atomic(saved",
     ["tests/test_report.py"]),
    ("report: saved curves read without their diagnostics", "oversight_cli/report.py",
     'is damaged"]\n        return curves, []', 'is damaged"]\n        return {**curves, "diagnostics": {}}, []',
     ["tests/test_report.py"]),
    ("report: saved curves stand in for events written after them", "oversight_cli/report.py",
     "saved.stat().st_mtime > max(", "saved.stat().st_mtime < max(", ["tests/test_report.py"]),
    ("report: saved curves stand in whatever tags they were read with", "oversight_cli/report.py",
     "if curves is not None and tags == SAVED_TAGS:", "if curves is not None:", ["tests/test_report.py"]),
    ("report: curves saved without their tags (never stand in for events)", "oversight_cli/report.py",
     'write_json_atomic(saved, {**curves, "tags": SAVED_TAGS})', "write_json_atomic(saved, curves)",
     ["tests/test_report.py"]),
    ("sweep log: a finished cell not saved until the sweep ends (a kill loses the piece)", "oversight_cli/sweep_log.py",
     "        self.entry[\"seconds\"] = round(self.clock() - self.started, 1)\n        self._save()",
     "        self.entry[\"seconds\"] = round(self.clock() - self.started, 1)", ["tests/test_sweep_log.py"]),
    ("sweep log: a failed cell counted as finished", "oversight_cli/sweep_log.py",
     'self.entry["cells_failed" if failed else "cells_finished"] += 1', 'self.entry["cells_finished"] += 1',
     ["tests/test_sweep_log.py"]),
    ("sweep log: a new piece replaces the earlier ones", "oversight_cli/sweep_log.py",
     "self.pieces = read_sweep_log(out)", "self.pieces = []", ["tests/test_sweep_log.py"]),
    ("sweep log: the wall time sums only the pieces that ended", "oversight_cli/sweep_log.py",
     'total = sum(p["seconds"] for p in pieces)', 'total = sum(p["seconds"] for p in pieces if p.get("ended"))',
     ["tests/test_sweep_log.py"]),
    ("sweep log: a machine named without its generation", "oversight_cli/sweep_log.py",
     """ + (f", {machine['cpu_id']}" if machine.get("cpu_id") else "")""", "", ["tests/test_sweep_log.py"]),
    ("machine: the CPU named by the last processor in cpuinfo", "oversight_cli/machine.py",
     "                if not line.strip():\n                    break\n", "", ["tests/test_sweep_log.py"]),
    ("report: the filmstrip's cell chosen among cells without a checkpoint", "oversight_cli/report.py",
     "        if not _has_checkpoint(run_dir / cell):\n            continue\n", "", ["tests/test_report.py"]),
    ("overview: an oracle's return in bold", "oversight_cli/report.py",
     'if values["return"] == best[column] and not method.startswith("oracle"):', 'if values["return"] == best[column]:',
     ["tests/test_report.py"]),
    ("overview: the best return taken over the oracles too", "oversight_cli/report.py",
     'if (m, column) in cells and not m.startswith("oracle")]', "if (m, column) in cells]", ["tests/test_report.py"]),
    ("overview: a shifted environment shown under its training placement", "oversight_cli/report.py",
     "ret, ghost = list(TEST_METRICS if test else SUMMARY_METRICS)", "ret, ghost = list(SUMMARY_METRICS)", ["tests/test_report.py"]),
    ("index report: no panel per environment", "oversight_cli/report.py",
     "    if summaries:\n        plot_environment_panels", "    if not summaries:\n        plot_environment_panels",
     ["tests/test_sweep.py"]),
    ("model labels: unsure predictions label too", "agents/methods.py",
     "sure[unobserved] = best >= self.confidence", "sure[unobserved] = best >= 0", ["tests/test_reward_model.py"]),
    ("aggregate: normalised by the best upper-bound run, not their mean", "oversight_cli/aggregate.py",
     "high = random[stratum], float(np.mean(by_method[UPPER]))", "high = random[stratum], float(np.max(by_method[UPPER]))",
     ["tests/test_aggregate.py"]),
    ("aggregate: the probability of improvement over every stratum, shared or not", "oversight_cli/aggregate.py",
     "if method in by_method and reference in by_method]", "if reference in by_method]", ["tests/test_aggregate.py"]),
    ("aggregate: a shifted environment scored under its training placement", "oversight_cli/aggregate.py",
     'return row["return_per_step"] if math.isnan(test) else test', 'return row["return_per_step"]', ["tests/test_aggregate.py"]),
    ("aggregate: the random policy plays the training placement", "oversight_cli/aggregate.py",
     'return {**env_kwargs, "placement": "test"} if has_placement_shift(env_id, env_kwargs) else env_kwargs',
     "return env_kwargs", ["tests/test_aggregate.py"]),
    ("ladder: --seeds keeps every seed", "oversight_cli/ladder.py",
     'if r["config"]["seed"] in seeds}', 'if r["config"]["seed"] in seeds or True}', ["tests/test_report.py"]),
    ("wrapper: oversight without a supervisor", "oversight_env/wrappers.py",
     "overseen = outcome != Outcome.NONE and self.supervised", "overseen = outcome != Outcome.NONE", WRAPPERS),
    ("wrapper: the last observation is the next episode's first", "oversight_env/wrappers.py",
     "                final_obs.append(obs)\n                obs, self._facts[i] = env.reset()",
     "                obs, self._facts[i] = env.reset()\n                final_obs.append(obs)", WRAPPERS),
    ("wrapper: the vector's steps never restart", "oversight_env/wrappers.py",
     "            self.steps = self.steps.index_put((done_indices,),", "            self.steps = self.steps.index_put((done_indices[:0],),",
     WRAPPERS),
    ("REINFORCE returns leak across episode ends", "agents/batch.py",
     "running = rewards[t] + rule.gamma * running * not_done[t]", "running = rewards[t] + rule.gamma * running", AGENTS),
    ("GAE delta leaks across episode ends", "agents/batch.py",
     "delta = rewards[t] + rule.gamma * next_value * not_done[t] - values[t]",
     "delta = rewards[t] + rule.gamma * next_value - values[t]", AGENTS),
    ("GAE accumulation leaks across episode ends", "agents/batch.py",
     "gae = delta + rule.gamma * rule.gae_lambda * not_done[t] * gae", "gae = delta + rule.gamma * rule.gae_lambda * gae", AGENTS),
    ("timeouts never bootstrapped", "agents/batch.py",
     "rewards = rewards + rule.gamma * rollout.timeout_values.float() * rollout.truncated", "rewards = rewards", AGENTS),
    ("PPO does not bootstrap the window's end", "agents/batch.py",
     'return self.algorithm == "ppo" or self.bootstrap', "return self.bootstrap", AGENTS),
    ("advantage without the baseline", "agents/batch.py", "return returns, returns - values", "return returns, returns", AGENTS),
    ("routing labels unobserved episodes too", "agents/methods.py",
     "torch.where(overseen, outcome, UNLABELLED)", "torch.where(overseen | True, outcome, UNLABELLED)", AGENTS),
    ("filtering weight threshold changed (== KEPT -> >= KEPT)", "agents/methods.py",
     "(propagate_episode_labels(done, episode) == KEPT)", "(propagate_episode_labels(done, episode) >= KEPT)", AGENTS),
    ("filtering drops timed-out episodes", "agents/methods.py",
     "torch.where(overseen | (outcome == 0), KEPT, DROPPED)", "torch.where(overseen, KEPT, DROPPED)", AGENTS),
    ("oracle trains the whole budget", "agents/methods.py",
     "return max(1, round(steps * oversight_prob))", "return steps", AGENTS),
    ("early stopping holds nothing out", "agents/methods.py",
     "return oversight_prob * (1 - self.holdout)", "return oversight_prob", AGENTS),
    ("early stopping's validation budget miscounted", "agents/methods.py",
     'state["labels_since_eval"] * self.holdout / (1 - self.holdout)', 'state["labels_since_eval"] * self.holdout', AGENTS),
    ("early stopping keeps the latest weights, not the best", "agents/methods.py",
     'if score > state["best_score"]:', "if True:", AGENTS),
    ("early stopping counts labels twice", "agents/methods.py",
     '        state["labels_since_eval"] = 0\n', "", AGENTS),
    ("gate-loss coefficient ignored", "agents/losses.py",
     "settings.gate_coef * g_loss if method.gate_loss", "g_loss if method.gate_loss", AGENTS),
    ("labels never route gradients", "agents/losses.py",
     "return samples.labels if method.route_labels else None", "return None", AGENTS),
    ("entropy bonus with the wrong sign", "agents/losses.py",
     "per_sample = pg - settings.ent_coef * entropy", "per_sample = pg + settings.ent_coef * entropy", AGENTS),
    ("sample weights ignored", "agents/losses.py", "LossTerms(weights * per_sample,", "LossTerms(per_sample,", AGENTS),
    ("gradient clipping never applied", "agents/losses.py",
     "if settings.max_grad_norm is not None:", "if False:", TRAINERS),
    ("PPO clip takes the max", "agents/losses.py",
     "pg = -torch.min(ratio * advantages, clipped * advantages)", "pg = -torch.max(ratio * advantages, clipped * advantages)", AGENTS),
    ("learning rate schedule not applied to the optimizer", "agents/losses.py",
     '        group["lr"] = settings.learning_rate\n', "        pass\n", TRAINERS),
    ("entropy schedule constant", "agents/config.py",
     "return self.ent_coef + (self.ent_coef_final - self.ent_coef) * min(max(progress, 0.0), 1.0)", "return self.ent_coef", AGENTS),
    ("learning rate never annealed", "agents/config.py",
     "return self.learning_rate * (1.0 - min(max(progress, 0.0), 1.0)) if self.anneal_lr else self.learning_rate",
     "return self.learning_rate", AGENTS),
    ("lean trainer passes all-zero labels to the loss", "agents/lean_trainer.py",
     "batch.labels, batch.weights), samples_wanted)", "torch.zeros_like(batch.labels), batch.weights), samples_wanted)", TRAINERS),
    ("lean trainer never applies the entropy schedule", "agents/lean_trainer.py",
     'UpdateSettings.from_config(self.config, self.state["env_steps"] / self.total_steps)',
     "UpdateSettings.from_config(self.config, 0.0)", TRAINERS),
    ("a resumed run restarts from scratch", "agents/lean_trainer.py", "if checkpoint_path.exists():", "if False:", TRAINERS),
    ("resume purges the checkpoint step's own events", "agents/lean_trainer.py",
     'purge_step=self.state["env_steps"] + 1)', 'purge_step=self.state["env_steps"] or None)', TRAINERS),
    ("one seed for environments, initialisation and actions", "agents/lean_trainer.py",
     "env_seed, init_seed, action_seed = independent_seeds(config.seed, 3)", "env_seed = init_seed = action_seed = config.seed",
     TRAINERS),
    ("lean trainer ignores the method's training oversight", "agents/lean_trainer.py",
     '"oversight_prob": method.training_oversight(config.oversight_prob)', '"oversight_prob": config.oversight_prob', TRAINERS),
    ("early stopping's chosen weights not loaded", "agents/lean_trainer.py", "        if chosen is not None:\n            self.net.load",
     "        if False:\n            self.net.load", ["tests/test_agents.py", "tests/test_cli.py"]),
    ("budget rounded up to whole updates", "agents/lean_trainer.py", "batch.labels, batch.weights), samples_wanted)",
     "batch.labels, batch.weights))", TRAINERS),
    ("evaluator overwrites first episodes with later ones", "agents/evaluator.py",
     "new = (step.done & ~finished).cpu().numpy()", "new = step.done.cpu().numpy()", AGENTS),
    ("training evaluation of the whole policy, not the evaluated variant", "agents/evaluator.py",
     "get_method(config.method).evaluate_without,", "None,", TRAINERS),
    ("P(ghost | unobserved) conditioned on the episode's oversight", "agents/metrics.py",
     "unobserved_ghost = ~ghost_overseen", "unobserved_ghost = ~overseen", AGENTS),
    ("return per step discounted one step too many", "agents/metrics.py",
     "per_episode = true_reward * (1 - gamma**length) / (1 - gamma)",
     "per_episode = true_reward * (1 - gamma ** (length + 1)) / (1 - gamma)", AGENTS),
    ("RoutedPPO seeds everything with one integer", "agents/sb3.py",
     "super().set_random_seed(init_seed)", "super().set_random_seed(seed)", SB3),
    ("RoutedPPO evaluates its schedules after the rollout", "agents/sb3.py",
     "remaining = 1.0 - (self.num_timesteps - len(samples.obs)) / self._total_timesteps",
     "remaining = 1.0 - self.num_timesteps / self._total_timesteps", SB3),
    ("SB3 resume resets the environments", "agents/sb3.py", 'force_reset=False)', 'force_reset=True)', SB3),
    ("a run directory accepts another config", "agents/run_dir.py",
     'if previous.get(k, "<missing>") != current.get(k, "<missing>"))', "if False)", ["tests/test_agents.py"]),
    ("comparison verdict from the wrong bound", "oversight_cli/report.py",
     'verdict = "better" if low > 0 else', 'verdict = "better" if high > 0 else', SWEEP),
    ("summary pools every variant, not the evaluated one", "oversight_cli/report.py",
     '        if row["evaluated"]:\n            groups', '        if True:\n            groups', SWEEP),
    ("bootstrap interval of a single resample", "oversight_cli/report.py",
     "return stratified_bootstrap_ci([values], lambda g: g[0].mean(-1), resamples, seed)",
     "return stratified_bootstrap_ci([values], lambda g: g[0].mean(-1), 1, seed)", SWEEP),
    ("report pools cells of different settings", "oversight_cli/report.py",
     "            if value != expected:\n", "            if False:\n", SWEEP),
    ("report pools two runs of one cell as two seeds", "oversight_cli/report.py", "        if key in seen:\n",
     "        if False:\n", SWEEP),
    ("report forgets the missing cells", "oversight_cli/report.py", "        if path in finished:\n            continue",
     "        continue", SWEEP),
    ("results.csv records the nominal budget", "oversight_cli/report.py", '"env_steps": report["env_steps"]',
     '"env_steps": report["config"]["steps"]', SWEEP),
    ("spec accepts duplicate seeds", "oversight_cli/spec.py", "        if k in seen:\n", "        if False:\n", SWEEP),
    ("spec name may climb out of runs/", "oversight_cli/spec.py", 'if name == "." or ".." in name or', "if name == '.' or", SWEEP),
    ("sweep trains finished cells again", "oversight_cli/sweep.py",
     'todo = [(cell, spec.config(cell)) for cell in cells if not (out / cell.path() / "eval.json").exists()]',
     "todo = [(cell, spec.config(cell)) for cell in cells]", SWEEP),
    ("sweep workers outlive the sweep", "oversight_cli/sweep.py", "    set_parent_death_signal()\n    watch_parent(parent)\n",
     "    pass\n", SWEEP),
    ("population: one action generator shared by all seeds", "agents/population.py",
     "sample_actions(out.logits[k], run.generator)", "sample_actions(out.logits[k], runs[0].generator)", POPULATION),
    ("population: PPO minibatches of every seed from one generator", "agents/population.py",
     "minibatches(count, settings, g) for g in generators", "minibatches(count, settings, generators[0]) for g in generators",
     POPULATION),
    ("population: every seed's minibatches in one order", "agents/population.py",
     "rows = torch.stack(idx)", "rows = idx[0].expand(len(idx), -1)", POPULATION),
    ("population: the checkpoint's Adam state of the next seed", "agents/population.py",
     "return value[k].clone() if value.dim() else value.clone()",
     "return value[(k + 1) % len(value)].clone() if value.dim() else value.clone()", POPULATION),
    ("population: a resumed population's Adam states in the wrong order", "agents/population.py",
     "stacked[i][key] = torch.stack(values)", "stacked[i][key] = torch.stack(values[::-1])", POPULATION),
    ("population: a resumed population's Adam state dropped", "agents/population.py",
     "    if lead.saved_optimizer is not None:\n", "    if False:\n", POPULATION),
    ("population: the checkpoint's weights of the next seed", "agents/population.py",
     "tensor.copy_(stacked[name][k])", "tensor.copy_(stacked[name][(k + 1) % len(self.nets)])", POPULATION),
    ("population: gradients clipped by the norm of all seeds together", "agents/population.py",
     "clip_grad_norm_per_seed(nets.params.values(), settings.max_grad_norm)",
     "torch.nn.utils.clip_grad_norm_(nets.params.values(), settings.max_grad_norm)", POPULATION),
    ("population: the seeds' losses averaged, not summed", "agents/population.py",
     "torch.stack(losses).sum().backward()", "torch.stack(losses).mean().backward()", POPULATION),
    ("population: each seed's loss on seed 0's samples", "agents/population.py",
     "seed_samples(samples, k), normalize)", "seed_samples(samples, 0), normalize)", POPULATION),
    ("population: labels never route the batched forward's gradients", "agents/population.py",
     "out = nets(samples.obs, routing_labels(method, samples))", "out = nets(samples.obs, None)", POPULATION),
    ("population: timed-out episodes valued by seed 0's critic", "agents/population.py",
     "[nets.critic_of(k) for k in range(len(runs))]", "[nets.critic_of(0) for k in range(len(runs))]", POPULATION),
    ("population: every seed bootstraps from seed 0's last value", "agents/population.py",
     "run.samples(bufs[k], last_values[k], samples_wanted)", "run.samples(bufs[k], last_values[0], samples_wanted)",
     POPULATION),
    ("population: seed 0's loss statistics logged for every seed", "agents/population.py",
     "per_seed[k], stats[k], settings, seconds)", "per_seed[k], stats[0], settings, seconds)", POPULATION),
    ("population: the learning rate schedule not applied", "agents/population.py",
     '        group["lr"] = settings.learning_rate\n    if settings.algorithm != "ppo":\n        return _gradient_step(nets,',
     '        pass\n    if settings.algorithm != "ppo":\n        return _gradient_step(nets,', POPULATION),
    ("population: seeds at different steps trained together", "agents/train.py",
     "by_step.setdefault(step, []).append(i)", "by_step.setdefault(0, []).append(i)", POPULATION),
    ("population: the sweep groups cells that differ in a setting", "oversight_cli/sweep.py",
     'if k != "seed"}, sort_keys=True)', 'if k not in ("seed", "learning_rate")}, sort_keys=True)', POPULATION),
    ("population: the sweep groups seeds with population off", "oversight_cli/sweep.py",
     "    if not population:\n        return [(train_cell,", "    if False:\n        return [(train_cell,", POPULATION),
    ("population: auto turns populations on on the CPU", "oversight_cli/sweep.py",
     'return config.torch_device().type == "cuda"', "return True", POPULATION),
    ("CLI drops the flags' settings", "oversight_cli/main.py", "        settings[field.name] = text if parse is None else",
     "        settings['_'] = text if parse is None else", CLI + ["tests/test_cli_bad_input.py"]),
    ("default run directories collide", "oversight_cli/main.py", '    if preset != "fast":\n        name += f"_{preset}"\n',
     "", CLI + ["tests/test_cli_bad_input.py"]),
    ("IQM keeps the tails", "oversight_cli/statistics.py",
     "cut = int(math.floor(0.25 * values.shape[-1]))", "cut = 0", STATISTICS),
    ("probability of improvement counts ties as wins", "oversight_cli/statistics.py",
     "((a > b) + 0.5 * (a == b))", "((a > b) + 1.0 * (a == b))", STATISTICS),
    ("probability of improvement pools strata instead of averaging them", "oversight_cli/statistics.py",
     "return np.mean(per_stratum, axis=0)", "return per_stratum[0]", STATISTICS),
    ("bootstrap resamples every stratum from the first", "oversight_cli/statistics.py",
     "draws = [g[rng.integers(0, len(g), size=(resamples, len(g)))] for g in groups]",
     "draws = [groups[0][rng.integers(0, len(groups[0]), size=(resamples, len(g)))] for g in groups]", STATISTICS),
    ("comparison's all-levels row uses one level", "oversight_cli/report.py",
     "**_improvement([values[(reference, p)] for p in levels], [values[(method, p)] for p in levels])",
     "**_improvement([values[(reference, levels[0])]], [values[(method, levels[0])]])", STATISTICS),
    ("expert KL in the other direction", "agents/evaluator.py",
     "kl = (log_probs[0].exp() * (log_probs[0] - log_probs[1])).sum(-1)",
     "kl = (log_probs[1].exp() * (log_probs[1] - log_probs[0])).sum(-1)", DIAGNOSTICS),
    ("labelled episodes counted whether overseen or not", "agents/methods.py",
     "state[\"labelled_episodes\"][name] += int((overseen & (outcome == code)).sum())",
     "state[\"labelled_episodes\"][name] += int((outcome == code).sum())", DIAGNOSTICS),
    ("gate diagnostics averaged over the whole run", "oversight_cli/report.py",
     "if step >= 0.9 * end]", "]", DIAGNOSTICS),
    ("evaluation diagnostics take the first value", "oversight_cli/report.py",
     "values[metric] = max(series[tag])[1]", "values[metric] = min(series[tag])[1]", DIAGNOSTICS),
    ("parameter-level routing freezes nothing", "routing/mixture.py",
     "        if label == UNLABELLED or self.gate is None:\n            return []",
     "        if True:\n            return []", ["tests/test_routing.py", "tests/test_agents.py"]),
    ("parameter-level routing freezes the gate only", "routing/mixture.py",
     "return [*other.parameters(), *self.gate.parameters()]", "return [*self.gate.parameters()]",
     ["tests/test_routing.py", "tests/test_agents.py"]),
    ("routed backward sends each loss everywhere", "routing/parameters.py",
     "grads = torch.autograd.grad(losses[key], params,", "params = [p for ps in parameters.values() for p in ps]\n        grads = torch.autograd.grad(losses[key], params,",
     ["tests/test_routing.py", "tests/test_agents.py"]),
    ("parameter-level routing method trains unrouted", "agents/losses.py",
     "    if method.route_parameters:\n        parameter_routed_backward", "    if False:\n        parameter_routed_backward",
     ["tests/test_agents.py"]),
    ("a step counts as finished before its episode ends", "agents/carry.py",
     "return done.int().flip(0).cummax(0).values.flip(0).bool()", "return done.int().cummax(0).values.bool()",
     ["tests/test_carry.py"]),
    ("padding is carried as if it were steps", "agents/carry.py",
     "    waiting = valid & ~finished\n", "    waiting = ~finished\n", ["tests/test_carry.py"]),
    ("the carry is not in the checkpoint", "agents/lean_trainer.py",
     "            self.carry = saved.get(\"carry\")\n", "            self.carry = None\n", ["tests/test_agents.py"]),
    ("carried steps train before their episode ends", "agents/lean_trainer.py",
     "trained, self.carry = split(window, valid)", "trained, self.carry = valid, None", ["tests/test_carry.py"]),
    ("the gate replay keeps unlabelled samples too", "agents/methods.py",
     "        keep = labels != UNLABELLED\n", "        keep = labels >= UNLABELLED\n", ["tests/test_agents.py"]),
    ("the gate replay keeps the oldest samples", "agents/methods.py",
     'new_obs[-self.replay_capacity:], new_labels[-self.replay_capacity:]',
     'new_obs[:self.replay_capacity], new_labels[:self.replay_capacity]', ["tests/test_agents.py"]),
    ("replayed samples left out of the gate loss", "agents/losses.py",
     "    if gate_replay is not None and gate_logit is not None:", "    if False:", ["tests/test_agents.py"]),
    ("the lean trainer never fills the gate replay", "agents/lean_trainer.py",
     '        self.method.after_update(self.state["method"], samples.obs, samples.labels)\n', "", ["tests/test_agents.py"]),
    ("populations take lean-only methods", "agents/population.py",
     "not chosen.route_parameters and not chosen.lean_only", "not chosen.route_parameters", ["tests/test_population.py"]),
    ("the blind gate sees every plane", "agents/networks.py",
     "    return tuple(i for i, name in enumerate(plane_names) if name not in hidden)",
     "    return tuple(i for i, name in enumerate(plane_names))", ["tests/test_agents.py"]),
    ("the lean trainer ignores gate_hides", "agents/lean_trainer.py",
     "gate_planes=planes_shown(self.twin.plane_names, method.gate_hides),", "", ["tests/test_agents.py"]),
    ("the lean trainer lets the policy's loss train a supervised-only gate", "agents/lean_trainer.py",
     "gate_from_policy=method.gate_from_policy", "gate_from_policy=True", ["tests/test_agents.py"]),
    ("a detached gate still learns from the output", "routing/mixture.py",
     "            g = g.detach()\n", "            pass\n", ["tests/test_routing.py"]),
    ("gate by outcome swaps overseen and unobserved", "agents/evaluator.py",
     'chosen = (data["outcome"] == outcome) & (data["overseen"] == seen)',
     'chosen = (data["outcome"] == outcome) & (data["overseen"] != seen)', DIAGNOSTICS),
    ("an episode's mean gate counts one step too many", "agents/evaluator.py",
     'result["mean_gate"] = (gate_sum / torch.as_tensor(result["length"], device=twin.device)).cpu().numpy()',
     'result["mean_gate"] = (gate_sum / (1 + torch.as_tensor(result["length"], device=twin.device))).cpu().numpy()',
     DIAGNOSTICS),
    ("finished episodes keep adding to their gate", "agents/evaluator.py",
     "            gate_sum[running] += gate\n", "            gate_sum += net(obs).gate.float()\n", DIAGNOSTICS),
    ("the report ignores the chosen reference", "oversight_cli/report.py",
     "comparisons = comparison_rows(rows, reference or REFERENCE_METHOD)", "comparisons = comparison_rows(rows)", ["tests/test_report.py"]),
    ("the report leaves out the gate on unobserved ghost episodes", "oversight_cli/report.py",
     '"eval/gate_ghost_unobserved": "gate_on_unobserved_ghost_episodes",', "", DIAGNOSTICS),
]


def stale(mutant: tuple[str, str, str, str, list[str]]) -> str | None:
    """Why a mutant no longer matches the code (its snippet must occur exactly once in its file),
    or None if it does."""
    kind, file, original, *_ = mutant
    path = ROOT / file
    if not path.exists():
        return f"{file} does not exist"
    count = path.read_text().count(original)
    return None if count == 1 else f"its snippet occurs {count} times in {file}, not once"


def run(mutant: tuple[str, str, str, str, list[str]]) -> tuple[bool, float]:
    """Plant the mutant, run its tests with -x, restore the file: (a test failed, seconds)."""
    kind, file, original, mutated, tests = mutant
    path = ROOT / file
    text = path.read_text()
    if text.count(original) != 1:
        raise ValueError(f"{kind!r}: {stale(mutant)}")
    tests = [t for t in tests if (ROOT / t).exists()]
    started = time.perf_counter()
    try:
        path.write_text(text.replace(original, mutated))
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                                cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(text)
    return result.returncode != 0, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the mutants whose kind or file contains this")
    parser.add_argument("--table", help="also write the table (markdown) to this file")
    parser.add_argument("--check", action="store_true", help="only check that every snippet still matches the code")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or args.only in m[0] or args.only in m[1]]
    # Checked before anything runs: a stale entry is reported in the table, and the rest still run.
    stale_ones = {i: why for i, m in enumerate(chosen) if (why := stale(m)) is not None}
    for i, why in stale_ones.items():
        print(f"STALE: {chosen[i][0]!r}: {why}", file=sys.stderr)
    if args.check:
        print(f"{len(chosen) - len(stale_ones)} of {len(chosen)} mutants match the code")
        raise SystemExit(1 if stale_ones else 0)
    lines = ["| # | bug planted | file | tests run | result |", "|---:|---|---|---|---|"]
    survived = 0
    for i, mutant in enumerate(chosen):
        kind, file, *_, tests = mutant
        if i in stale_ones:
            result, seconds = "STALE (snippet not in the code)", 0.0
        else:
            caught, seconds = run(mutant)
            survived += not caught
            result = "caught" if caught else "SURVIVED"
        line = f"| {i + 1} | {kind} | `{file}` | {', '.join(Path(t).stem for t in tests)} | {result} |"
        lines.append(line)
        print(f"{line}  ({seconds:.0f} s)", flush=True)
    ran = len(chosen) - len(stale_ones)
    summary = f"{ran - survived} of {ran} caught" + (f"; {len(stale_ones)} stale, not run" if stale_ones else "")
    print(summary)
    if args.table:
        Path(args.table).write_text("\n".join(lines) + f"\n\n{summary}.\n")


if __name__ == "__main__":
    main()
