"""Model pieces as Keras layers."""

from keras_mtl.layers.balancer_state import BalancerState
from keras_mtl.layers.byte_one_hot import ByteOneHot
from keras_mtl.layers.hashed_ngrams import HashedNgrams
from keras_mtl.layers.tabular_encoder import TabularEncoder
from keras_mtl.layers.task_head import TaskHead

__all__ = ["BalancerState", "ByteOneHot", "HashedNgrams", "TabularEncoder", "TaskHead"]
