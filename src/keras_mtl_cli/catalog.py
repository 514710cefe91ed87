"""What `mtl methods` lists, without importing Keras.

`METHODS` (in `methods_data.py`) is generated from the registries'
docstrings by `build()`; a test fails when it is out of date. Regenerate with
`python -m keras_mtl_cli.catalog`, then `ruff format`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keras_mtl_cli.methods_data import METHODS

GROUPS = ("architecture", "fusion", "encoder", "balancer")
__all__ = ["GROUPS", "METHODS", "build", "first_paragraph"]


def build() -> list[tuple[str, str, str]]:
    """(kind, name, description) from the live registries (imports Keras):
    the first paragraph of each class's docstring."""
    from keras_mtl import architectures, balancers, encoders, fusion

    registries: dict[str, Any] = {
        "architecture": architectures.ARCHITECTURES,
        "fusion": fusion.FUSIONS,
        "encoder": encoders.ENCODERS,
        "balancer": balancers.BALANCERS,
    }
    return [
        (kind, name, first_paragraph(cls.__doc__ or ""))
        for kind in GROUPS
        for name, cls in registries[kind].items()
    ]


def first_paragraph(doc: str) -> str:
    lines = []
    for line in doc.strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


def write(rows: list[tuple[str, str, str]]) -> None:
    """Writes `methods_data.py` with `rows`."""
    path = Path(__file__).with_name("methods_data.py")
    head = path.read_text(encoding="utf-8").split("METHODS:")[0]
    body = "".join(f"    {row!r},\n" for row in rows)
    path.write_text(
        f"{head}METHODS: list[tuple[str, str, str]] = [\n{body}]\n", encoding="utf-8"
    )


if __name__ == "__main__":
    import os

    os.environ.setdefault("KERAS_BACKEND", "jax")
    write(build())
