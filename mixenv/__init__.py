"""mixenv: a Gymnasium environment for learning mixed-sample data augmentation policies.

Importing the package registers ``"mixenv/MixupTraining-v0"`` with Gymnasium.
"""

from gymnasium.envs.registration import register

ENV_ID = "mixenv/MixupTraining-v0"

register(id=ENV_ID, entry_point="mixenv.env:MixupTrainingEnv")

__all__ = ["ENV_ID"]
