"""Which balancing methods a model test trains on each backend.

The methods themselves are NumPy, the same on every backend, and their
numbers are checked once (`test_balancer_values`, `test_balancer_properties`).
What differs per backend is the step that runs them, so the PyTorch and
TensorFlow passes train one method of each kind of step, and JAX trains all.
"""

from __future__ import annotations

import keras
import pytest

#: One method for each kind of step: constant weights (ew), learned
#: parameters (uw), a host call with state (dwa), a Gramian method without
#: state (upgrad) and with a random draw (pcgrad) or state (gradvac), a
#: Jacobian method with a random draw (graddrop) and with state sized by the
#: Jacobian (moco).
STEP_KINDS = ("dwa", "ew", "graddrop", "gradvac", "moco", "pcgrad", "upgrad", "uw")


def methods(names: list[str]) -> list[str]:
    """All of `names` on JAX; elsewhere those that stand for a kind of step.

    Example:
    >>> sorted(set(methods(["ew", "mgda", "upgrad"])) - {"mgda"})
    ['ew', 'upgrad']
    """
    if keras.backend.backend() == "jax":
        return list(names)
    return [n for n in names if n in STEP_KINDS]


def cases(every: list, kinds: list) -> list:
    """`every` parameter combination on JAX; elsewhere `kinds`, one per code
    path the backend runs differently (the rest repeat backend-neutral
    code that JAX checks).

    Example:
    >>> len(cases([1, 2, 3], [2])) in (1, 3)
    True
    """
    return list(every) if keras.backend.backend() == "jax" else list(kinds)


def once(why: str) -> pytest.MarkDecorator:
    """Runs a `model` test on JAX only; `why` says why the other backends
    would repeat it (what they run differently is checked elsewhere)."""
    return pytest.mark.skipif(
        keras.backend.backend() != "jax", reason=f"checked once, on JAX: {why}"
    )
