"""Training, evaluation, checkpoints and multi-process (DDP) support.

- :class:`TrainConfig`, :func:`train`: the training loop (:mod:`.train`);
- :func:`evaluate`: precision / recall / H-mean of a model on a dataset;
- :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`model_from_checkpoint`;
- :func:`parse_data_spec`: ``synthetic``, ``icdar2015:PATH``, ``totaltext:PATH``.
"""

from dbnet_fast.engine.checkpoint import (
    build_model,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from dbnet_fast.engine.data import DataSpec, eval_dataset, parse_data_spec, train_dataset
from dbnet_fast.engine.evaluate import evaluate, predict_batch
from dbnet_fast.engine.schedule import EpochSampler, PolySchedule
from dbnet_fast.engine.train import TrainConfig, train

__all__ = [
    "DataSpec",
    "EpochSampler",
    "PolySchedule",
    "TrainConfig",
    "build_model",
    "eval_dataset",
    "evaluate",
    "load_checkpoint",
    "model_from_checkpoint",
    "parse_data_spec",
    "predict_batch",
    "save_checkpoint",
    "train",
    "train_dataset",
]
