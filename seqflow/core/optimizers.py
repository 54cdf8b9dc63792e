"""Row-sparse ("lazy") Adam for large embedding tables (TensorFlow backend, our only one).

Keras 3's Adam turns an embedding's ``tf.IndexedSlices`` gradient into dense ops (``gradient - m`` ...), so every
step rewrites m, v and the variable for every row of the table: with hashed bigrams a 1,000,000 x 32 table makes
each step cost the whole table although a batch touches a few thousand rows. Lazy Adam (as fastText-style models
and TF1's LazyAdamOptimizer do) updates m, v and the variable only on the rows the batch touched; the cost of a
step follows the batch, not the table. Rows a batch does not touch keep their moments and do not move (plain Adam
would keep moving them with their decaying momentum): that is the intended difference, not a bug.

Importing this module imports Keras and TensorFlow and registers ``seqflow>LazyAdam``: import it inside functions,
before loading a ``.keras`` model that may have been compiled with it (as seqflow.models.text for its layers).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def deduplicated(gradient: tf.IndexedSlices) -> tf.IndexedSlices:
    """The same gradient with each row index once: values of repeated indices summed, as in the dense gradient."""
    unique_indices, positions = tf.unique(gradient.indices)
    summed_values = tf.math.unsorted_segment_sum(gradient.values, positions, num_segments=tf.shape(unique_indices)[0])
    return tf.IndexedSlices(summed_values, unique_indices, gradient.dense_shape)


@keras.saving.register_keras_serializable(package="seqflow")
class LazyAdam(keras.optimizers.Adam):
    """Adam whose ``tf.IndexedSlices`` gradients update only the rows they name; dense gradients: plain Adam.

    Same hyper-parameters and bias correction as :class:`keras.optimizers.Adam` (the correction uses the
    optimizer's global step), so on a row touched at every step it is exactly Adam.
    """

    def update_step(self, gradient, variable, learning_rate):  # noqa: ANN001, ANN201 - keras types
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        gradient = deduplicated(gradient)
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        values = tf.cast(gradient.values, dtype)
        indices = gradient.indices
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))

        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        momentum_rows = beta_1 * _gathered(momentum, indices) + (1 - beta_1) * values
        velocity_rows = beta_2 * _gathered(velocity, indices) + (1 - beta_2) * tf.square(values)
        # The backend's assign/assign_sub scatter IndexedSlices (scatter_update / scatter_sub) row by row.
        self.assign(momentum, tf.IndexedSlices(momentum_rows, indices, gradient.dense_shape))
        self.assign(velocity, tf.IndexedSlices(velocity_rows, indices, gradient.dense_shape))
        if self.amsgrad:
            velocity_hat = self._velocity_hats[index]
            velocity_rows = tf.maximum(_gathered(velocity_hat, indices), velocity_rows)
            self.assign(velocity_hat, tf.IndexedSlices(velocity_rows, indices, gradient.dense_shape))
        step_rows = alpha * momentum_rows / (tf.sqrt(velocity_rows) + tf.cast(self.epsilon, dtype))
        self.assign_sub(variable, tf.IndexedSlices(step_rows, indices, gradient.dense_shape))
        return None

    def _clip_gradients(self, grads):  # noqa: ANN001, ANN202 - keras types
        """Global-norm clipping that keeps IndexedSlices sparse.

        Keras' ``clip_by_global_norm`` multiplies each gradient by a tensor, which densifies an IndexedSlices
        to the whole table (and the update after it would be dense again). Here the norm is taken over the
        deduplicated rows (equal to the dense gradient's norm) and only the row values are scaled.
        """
        if not (self.global_clipnorm and self.global_clipnorm > 0) or not any(
            isinstance(grad, tf.IndexedSlices) for grad in grads
        ):
            return super()._clip_gradients(grads)
        grads = [deduplicated(grad) if isinstance(grad, tf.IndexedSlices) else grad for grad in grads]
        norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(_values(grad))) for grad in grads if grad is not None]))
        clip_norm = tf.cast(self.global_clipnorm, norm.dtype)
        # As keras' clip_by_global_norm: 1 below the clip norm; NaN (not a silent pass) for a non-finite norm.
        scale = clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)
        return [None if grad is None else _scaled(grad, scale) for grad in grads]


def _gathered(variable: keras.Variable, indices: tf.Tensor) -> tf.Tensor:
    """Rows of an optimizer variable, read as rows (ResourceGather) from its tf.Variable.

    ``tf.gather`` on the Keras wrapper converts it to a dense tensor first: a copy of the whole table per step,
    which is the cost lazy updates exist to avoid.
    """
    return tf.gather(variable.value if isinstance(variable, keras.Variable) else variable, indices)


def _values(gradient: tf.Tensor | tf.IndexedSlices) -> tf.Tensor:
    """A gradient's numbers as float32: the rows of an IndexedSlices, or the dense tensor itself."""
    return tf.cast(gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient, tf.float32)


def _scaled(gradient: tf.Tensor | tf.IndexedSlices, scale: tf.Tensor) -> tf.Tensor | tf.IndexedSlices:
    """``gradient * scale``, an IndexedSlices staying an IndexedSlices (only its rows are multiplied)."""
    if isinstance(gradient, tf.IndexedSlices):
        values = gradient.values * tf.cast(scale, gradient.values.dtype)
        return tf.IndexedSlices(values, gradient.indices, gradient.dense_shape)
    return gradient * tf.cast(scale, gradient.dtype)
