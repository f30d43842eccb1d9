"""Policies for MixupTrainingEnv: fixed heuristics, the PPO agent, checkpoints, evaluation."""

from agents.checkpoints import (
    Checkpoint,
    CheckpointError,
    load_agent,
    load_checkpoint,
    save_checkpoint,
)
from agents.evaluation import (
    DEFAULT_MAX_DIVERGED,
    EPISODE_METRICS,
    RunRecord,
    check_policies,
    divergence_report,
    load_policy,
    run_policy,
)
from agents.policies import (
    RANDOM,
    HeuristicPolicy,
    heuristic_names,
    is_heuristic,
    make_policy,
    required_methods,
)
from agents.ppo import (
    AgentPolicy,
    PPOConfig,
    agent_state,
    build_ppo,
    check_format,
    load_training_state,
)

__all__ = [
    "DEFAULT_MAX_DIVERGED",
    "EPISODE_METRICS",
    "RANDOM",
    "AgentPolicy",
    "Checkpoint",
    "CheckpointError",
    "HeuristicPolicy",
    "PPOConfig",
    "RunRecord",
    "agent_state",
    "build_ppo",
    "check_format",
    "check_policies",
    "divergence_report",
    "heuristic_names",
    "is_heuristic",
    "load_agent",
    "load_checkpoint",
    "load_policy",
    "load_training_state",
    "make_policy",
    "required_methods",
    "run_policy",
    "save_checkpoint",
]
