"""Analysis of trained multi-task models."""

from keras_mtl.analysis.affinity import TaskAffinity, task_affinity
from keras_mtl.analysis.dependency import Dependency, DependencyMap, dependency_map
from keras_mtl.analysis.graph import connected_inputs
from keras_mtl.analysis.grouping import Grouping, grouping_from_text, select_groups

__all__ = [
    "Dependency",
    "DependencyMap",
    "Grouping",
    "TaskAffinity",
    "connected_inputs",
    "dependency_map",
    "grouping_from_text",
    "select_groups",
    "task_affinity",
]
