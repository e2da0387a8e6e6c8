"""Procedural scenes of coloured shapes: training data and demo videos with exact ground truth.

A scene is a textured background with objects of :data:`CLASS_NAMES` (told apart by
outline, not colour), shape-like clutter that belongs to no class, and camera effects.
One ``difficulty`` scalar in [0, 1] controls how hard a scene is; every picture records
the factors that made it hard and a ``true_difficulty`` computed from them.

Modules: ``classes`` (outlines), ``background``, ``distractors``, ``compositing`` (painting
and visibility), ``effects``, ``difficulty`` (scalar to settings, factors to score),
``scene`` (one still), ``motion`` (a moving world), ``coco``, ``export`` (datasets) and
``video`` (clips).
"""

from engine.data.synthetic.classes import CLASS_NAMES
from engine.data.synthetic.difficulty import DifficultyFactors, true_difficulty
from engine.data.synthetic.export import write_dataset
from engine.data.synthetic.scene import GENERATOR_VERSION, ObjectAnnotation, SyntheticImage, generate_image
from engine.data.synthetic.video import ground_truth_path, write_video

__all__ = [
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "DifficultyFactors",
    "ObjectAnnotation",
    "SyntheticImage",
    "generate_image",
    "ground_truth_path",
    "true_difficulty",
    "write_dataset",
    "write_video",
]
