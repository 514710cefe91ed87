"""Name lookup shared by the registries of encoders, fusions and balancers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from keras_mtl.tasks.task import closest


def lookup(
    what: str,
    name: Any,
    table: Mapping[str, Callable[..., Any]],
    kind: type | None = None,
    /,
    **kwargs: Any,
) -> Any:
    """Builds `table[name](**kwargs)`, or raises one sentence naming the
    choices; returns `name` itself when it is already a `kind`.

    Example:
    >>> lookup("colour", "red", {"red": dict})
    {}
    >>> lookup("colour", "rde", {"red": dict})
    Traceback (most recent call last):
    ValueError: Unknown colour 'rde'; expected one of red (did you mean "red"?).
    """
    if kind is not None and isinstance(name, kind):
        return name
    if isinstance(name, str) and name in table:
        return table[name](**kwargs)
    raise ValueError(
        f"Unknown {what} {name!r}; expected one of {', '.join(table)}"
        f"{closest(str(name), list(table))}."
    )
