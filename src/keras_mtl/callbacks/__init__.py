"""Training that survives: atomic checkpoints that resume exactly
(`checkpoint`), early stopping whose state they hold (`early_stopping`), and
the guards that never apply a non-finite step and stop on a label out of
range (`guards`)."""

from keras_mtl.callbacks.checkpoint import Checkpoint, _EpochSync, fit_resumable
from keras_mtl.callbacks.early_stopping import EarlyStopping
from keras_mtl.callbacks.guards import (
    LABEL_KEYS,
    LabelGuard,
    NonFiniteError,
    NonFiniteGuard,
)
from keras_mtl.task_metrics import UNLABELLED

__all__ = [
    "LABEL_KEYS",
    "UNLABELLED",
    "Checkpoint",
    "EarlyStopping",
    "LabelGuard",
    "NonFiniteError",
    "NonFiniteGuard",
    "_EpochSync",
    "fit_resumable",
]
