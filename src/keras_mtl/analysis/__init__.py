"""Analysis of trained multi-task models."""

from keras_mtl.analysis.affinity import (
    Grouping,
    TaskAffinity,
    select_groups,
    task_affinity,
)
from keras_mtl.analysis.dependency import Dependency, DependencyMap, dependency_map
from keras_mtl.analysis.graph import connected_inputs

__all__ = [
    "Dependency",
    "DependencyMap",
    "Grouping",
    "TaskAffinity",
    "connected_inputs",
    "dependency_map",
    "select_groups",
    "task_affinity",
]
