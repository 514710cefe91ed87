"""TweetEval-style folders: `<split>_text.txt`, `<split>_labels.txt`, `mapping.txt`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keras_mtl.data import files

SPLITS = ("train", "val", "test")


def read_mapping(folder: str | Path) -> list[str]:
    """Class names by id from `mapping.txt` (`id<TAB>name` per line).

    The folder's own `mapping.txt`, else its parent's: the published
    TweetEval repository keeps one `stance/mapping.txt` for the per-target
    folders `stance/abortion`, `stance/atheism`, ...
    """
    folder = Path(folder)
    path = next(
        (
            where / "mapping.txt"
            for where in (folder, folder.parent)
            if (where / "mapping.txt").is_file()
        ),
        None,
    )
    if path is None:
        raise ValueError(
            f"{folder}: no mapping.txt, neither in the folder nor in its parent "
            "(a TweetEval folder has one)."
        )
    names: dict[int, str] = {}
    for number, line in enumerate(files.read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split(None, 1)
        try:
            names[int(parts[0])] = parts[1].strip() if len(parts) > 1 else parts[0]
        except ValueError:
            raise ValueError(
                f"{path}, line {number}: expected 'id<TAB>name', got {line!r}."
            ) from None
    if sorted(names) != list(range(len(names))):
        raise ValueError(
            f"{path}: class ids must be 0..{len(names) - 1}, got {sorted(names)}."
        )
    return [names[i] for i in range(len(names))]


def read_split(folder: str | Path, split: str) -> Any:
    """A split as a frame with columns `text` and `label` (class ids).

    Raises a one-sentence ValueError for a missing file, a line count that
    differs between texts and labels, or a label outside the mapping.
    """
    import pandas as pd

    folder = Path(folder)
    text_path = folder / f"{split}_text.txt"
    label_path = folder / f"{split}_labels.txt"
    for path in (text_path, label_path):
        if not path.is_file():
            raise ValueError(f"{folder}: no {path.name} for split {split!r}.")
    texts = files.read_text(text_path).splitlines()
    raw_labels = files.read_text(label_path).splitlines()
    raw_labels = [x for x in raw_labels if x.strip()]
    if len(texts) != len(raw_labels):
        raise ValueError(
            f"{folder}: {text_path.name} has {len(texts)} lines but "
            f"{label_path.name} has {len(raw_labels)}."
        )
    if not texts:
        raise ValueError(f"{folder}: {text_path.name} is empty.")
    classes = read_mapping(folder)
    labels = []
    for number, value in enumerate(raw_labels, 1):
        try:
            label = int(value.strip())
        except ValueError:
            raise ValueError(
                f"{label_path}, line {number}: expected a class id, got {value!r}."
            ) from None
        if not 0 <= label < len(classes):
            raise ValueError(
                f"{label_path}, line {number}: class id {label} is outside "
                f"0..{len(classes) - 1} ({', '.join(classes)})."
            )
        labels.append(label)
    return pd.DataFrame({"text": texts, "label": labels})
