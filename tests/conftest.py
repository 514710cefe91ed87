"""Shared fixtures. The backend comes from KERAS_BACKEND (make test runs each)."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Scripts the distribution tests run in subprocesses, not test modules.
collect_ignore = [
    "distribution_worker.py",
    "mirrored_worker.py",
    "torch_ddp_worker.py",
    "torch_resume_worker.py",
    "jax_process_worker.py",
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder: $MTL_DATA_DIR, default ../shared/data."""
    root = Path(__file__).resolve().parents[1]
    path = Path(os.environ.get("MTL_DATA_DIR", root.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (set MTL_DATA_DIR)")
    return path


def backend() -> str:
    return keras.backend.backend()
