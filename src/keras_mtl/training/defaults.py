"""Training defaults that work without tuning, the same in Python and configs.

* `compile()` with no optimizer: Adam with learning rate `LEARNING_RATE`.
* `fit()` with no `epochs`: up to `EPOCHS` epochs with early stopping after
  `PATIENCE` epochs without a better validation loss (training loss when
  there is no validation data), the best epoch's weights restored.
* A config that leaves `[compile] optimizer`, `[training] epochs` or
  `[training] early_stopping` out gets the same values.

Every default is overridden by giving the argument (or the config key):
`compile(optimizer="rmsprop")`, `fit(epochs=3)` (no early stopping unless
`early_stopping=N` is given too), `fit(early_stopping=0)`.
"""

from __future__ import annotations

import keras

#: Adam's learning rate when `compile` is given no optimizer.
LEARNING_RATE = 0.003
#: The most epochs `fit` runs when given no `epochs`.
EPOCHS = 20
#: Epochs without a better monitored loss before early stopping.
PATIENCE = 2


def optimizer() -> keras.optimizers.Optimizer:
    """A new instance of the default optimizer."""
    return keras.optimizers.Adam(learning_rate=LEARNING_RATE)
