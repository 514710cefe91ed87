"""keras-mtl: multi-task learning for Keras 3 on JAX, PyTorch and TensorFlow."""

from keras_mtl import architectures, callbacks, encoders, fusion, layers
from keras_mtl.data.text import encode_bytes
from keras_mtl.models import presets
from keras_mtl.models.builder import build_model
from keras_mtl.models.model import Model, MultiTaskModel
from keras_mtl.tasks.task import Task

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # `run` and `Config` pull in data loading: imported on first use.
    if name == "run":
        from keras_mtl.runs.runner import run

        return run
    if name == "Config":
        from keras_mtl.config import Config

        return Config
    raise AttributeError(f"module 'keras_mtl' has no attribute {name!r}")


__all__ = [
    "Config",
    "Model",
    "architectures",
    "callbacks",
    "MultiTaskModel",
    "Task",
    "build_model",
    "encode_bytes",
    "encoders",
    "fusion",
    "layers",
    "presets",
    "run",
]
