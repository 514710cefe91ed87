"""Models: `MultiTaskModel`, `build_model`, the seed's presets, and which variables tasks share."""
