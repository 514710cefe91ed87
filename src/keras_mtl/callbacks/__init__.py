"""Training that survives: atomic checkpoints (`checkpoint`) that resume
exactly (`resume`), early stopping whose state they hold (`early_stopping`), and
the guards that never apply a non-finite step and stop on a label out of
range (`guards`)."""

from keras_mtl.callbacks.checkpoint import Checkpoint
from keras_mtl.callbacks.early_stopping import EarlyStopping
from keras_mtl.callbacks.guards import (
    LABEL_KEYS,
    LabelGuard,
    NonFiniteError,
    NonFiniteGuard,
)
from keras_mtl.callbacks.resume import EpochSync, fit_resumable
from keras_mtl.tasks.metrics import UNLABELLED

__all__ = [
    "LABEL_KEYS",
    "UNLABELLED",
    "Checkpoint",
    "EarlyStopping",
    "LabelGuard",
    "NonFiniteError",
    "NonFiniteGuard",
    "EpochSync",
    "fit_resumable",
]
