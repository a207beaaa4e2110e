"""Training-data attribution: which training examples made the model say this.

Layers: `training_sets` (which rows, which checkpoints), `features` (their representations at every
checkpoint, prepared once and stored), one module per method (`nearest`, `tracin`, `representer`,
`influence`) registered in `registry`, `attribute` (the one call shape, agreement, suspicious
examples), `store` (stored results) and `retraining` (the check against real retraining).
"""
