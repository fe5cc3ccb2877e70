"""Training the joint network: configs, losses, metrics, simulated-raw batches, the trainer.

Needs torch (the ``train`` extra). Stages (the paper's recipe): ``isp`` pretrains the ISP
for reconstruction, ``head`` trains the perception head on clean images, ``joint`` trains
both end to end on simulated raw, ``baseline`` trains the head on the conventional ISP.

Example:
    >>> from edge_isp.train import load_config, train
    >>> result = train("joint", load_config("configs/smoke.toml", stage="joint"))  # doctest: +SKIP
"""

from edge_isp.train.checkpoint import load_checkpoint, model_from_checkpoint
from edge_isp.train.config import STAGES, ConfigError, TrainConfig, load_config
from edge_isp.train.loop import DivergedError, Trainer, TrainResult, train

__all__ = [
    "STAGES",
    "ConfigError",
    "DivergedError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "load_checkpoint",
    "load_config",
    "model_from_checkpoint",
    "train",
]
