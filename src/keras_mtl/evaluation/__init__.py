"""Evaluation: host-side scores of predictions, Δm% against single-task
models, and the bag-of-words yardstick."""

from keras_mtl.evaluation.relative import delta_m, summarize

__all__ = ["delta_m", "summarize"]
