"""Agents that act in partial-oversight environments: scripted reference policies now; PPO agents
with gradient-routed policy networks and their baselines come with the routing issue."""

from agents.scripted import POLICIES, nearest_terminal_action, random_action

__all__ = ["POLICIES", "nearest_terminal_action", "random_action"]
