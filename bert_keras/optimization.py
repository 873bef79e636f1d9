"""Optimizer defaults for fine-tuning BERT."""

import keras

# Biases and LayerNorm parameters are not decayed (BERT's recipe, HF's Trainer).
NO_DECAY_NAMES = ("bias", "gamma", "beta")


def create_optimizer(
    learning_rate=5e-5,
    weight_decay=0.01,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-6,
    clipnorm=1.0,
):
    """Returns AdamW with decoupled weight decay that skips biases and LayerNorm.

    Args:
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
        weight_decay: float, decoupled weight decay.
        beta_1: float, Adam first moment decay.
        beta_2: float, Adam second moment decay.
        epsilon: float, Adam epsilon.
        clipnorm: float or None, global gradient-norm clipping.

    Returns:
        `keras.optimizers.AdamW`.

    Example:

    >>> model.compile(optimizer=create_optimizer(learning_rate=2e-5))
    """
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=clipnorm,
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
