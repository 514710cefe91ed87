"""The base of every fusion layer: how a task's head reads several encodings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

Tensor = Any


class Fusion(keras.layers.Layer):
    """Combines the encodings of the inputs a task reads into one vector.

    A fusion layer is called once per distinct set of inputs (tasks that read
    the same inputs share the result), with a list of encodings of shape
    (batch, width). Subclasses set how many inputs they accept and whether
    widths must match; `check` enforces that at build time.
    """

    min_inputs: int = 1
    max_inputs: int | None = None
    equal_widths: bool = False
    #: Why widths must match, for the error message.
    width_reason: str = ""
    #: The registered short name (`keras_mtl.fusion.get(name)`).
    key: str = ""

    def check(
        self, task: str, names: Sequence[str], widths: Sequence[int | None]
    ) -> None:
        """Raises a one-sentence `ValueError` if `task` cannot use this fusion.

        Args:
            task: The task's name.
            names: The names of the inputs the task reads.
            widths: The widths of their encodings (None where unknown).
        """
        n = len(names)
        listed = ", ".join(names) if names else "none"
        if self.max_inputs is not None and n > self.max_inputs:
            if self.max_inputs == 1:
                raise ValueError(
                    f"Fusion '{self.key}' lets each task's head read exactly one "
                    f"input, but task '{task}' names {n}: {listed}."
                )
            raise ValueError(
                f"Fusion '{self.key}' takes at most {self.max_inputs} inputs per "
                f"task, but task '{task}' names {n}: {listed}."
            )
        if n < self.min_inputs:
            exact = self.max_inputs == self.min_inputs
            raise ValueError(
                f"Fusion '{self.key}' needs {'exactly' if exact else 'at least'} "
                f"{self.min_inputs} input{'s' if self.min_inputs > 1 else ''} per "
                f"task, but task '{task}' names {n}: {listed}."
            )
        known = [w for w in widths if w is not None]
        if self.equal_widths and len(set(known)) > 1:
            pairs = ", ".join(f"{a}: {w}" for a, w in zip(names, widths, strict=True))
            raise ValueError(
                f"Fusion '{self.key}' {self.width_reason}, so the encodings it "
                f"fuses need equal widths, but task '{task}' gets {pairs}."
            )

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        if not isinstance(inputs, list | tuple):
            inputs = [inputs]
        return self.fuse(list(inputs))

    def fuse(self, encodings: list[Tensor]) -> Tensor:
        """Fuses a list of (batch, width) encodings into one tensor."""
        raise NotImplementedError
