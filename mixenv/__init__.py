"""mixenv: a Gymnasium environment for learning mixed-sample data augmentation policies.

``mixenv.msda`` is the mixing core and needs torch alone, so this package imports nothing
else on its own. ``import mixenv.env`` registers ``"mixenv/MixupTraining-v0"`` with
Gymnasium (``gym.make("mixenv.env:mixenv/MixupTraining-v0")`` imports it on the way).
"""

ENV_ID = "mixenv/MixupTraining-v0"

__all__ = ["ENV_ID"]
