"""Policies for MixupTrainingEnv: fixed heuristics, the PPO agent, checkpoints, evaluation."""

from agents.checkpoints import (
    Checkpoint,
    CheckpointError,
    load_agent,
    load_checkpoint,
    save_checkpoint,
)
from agents.evaluation import EPISODE_METRICS, RunRecord, run_policy
from agents.policies import (
    RANDOM,
    HeuristicPolicy,
    heuristic_names,
    is_heuristic,
    make_policy,
    required_methods,
)
from agents.ppo import AgentPolicy, PerSampleExtractor, PPOConfig, agent_state, build_ppo

__all__ = [
    "EPISODE_METRICS",
    "RANDOM",
    "AgentPolicy",
    "Checkpoint",
    "CheckpointError",
    "HeuristicPolicy",
    "PPOConfig",
    "PerSampleExtractor",
    "RunRecord",
    "agent_state",
    "build_ppo",
    "heuristic_names",
    "is_heuristic",
    "load_agent",
    "load_checkpoint",
    "make_policy",
    "required_methods",
    "run_policy",
    "save_checkpoint",
]
