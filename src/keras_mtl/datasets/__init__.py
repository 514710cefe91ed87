"""Data sets that ship with the library or its dependencies."""

from keras_mtl.datasets import tweet_pairs

__all__ = ["tweet_pairs"]
