"""The ensemble's combination and the refit's epoch choice, without training anything."""

from __future__ import annotations

import numpy as np

from seqflow.sentiment.config import TrainingConfig
from seqflow.sentiment.ensemble import combine, fit_stack
from seqflow.sentiment.refit import chosen_epochs, refit_arrays, rows_digest


def test_stack_learns_to_trust_the_informative_member():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    informative = np.clip(0.5 + (labels - 0.5) * 0.6 + rng.normal(0, 0.15, 2000), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, 2000)
    weights, bias = fit_stack(np.stack([informative, noise], axis=1), labels)
    assert weights[0] > 1.0 and abs(weights[1]) < 0.2 and abs(bias) < 0.3
    stacked = combine(np.stack([informative, noise], axis=1), weights, bias)
    averaged = combine(np.stack([informative, noise], axis=1), [], 0.0)
    accuracy = lambda p: float(np.mean((p >= 0.5) == labels))  # noqa: E731
    assert accuracy(stacked) > accuracy(averaged)


def test_keras_layer_computes_what_the_stack_was_fitted_as(tmp_path):
    import keras

    from seqflow.models.text import CombineProbabilities

    probabilities = np.array([[0.9, 0.2, 0.6], [0.1, 0.4, 0.5], [0.999999999, 0.0, 0.3]], dtype=np.float32)
    for weights, bias in (([1.5, -0.2, 0.7], 0.1), ([], 0.0)):
        inputs = keras.Input(shape=(3,))
        model = keras.Model(inputs, CombineProbabilities(weights, bias, name="combine")(inputs))
        model.save(tmp_path / "combine.keras")
        loaded = keras.saving.load_model(tmp_path / "combine.keras", safe_mode=True)
        expected = combine(probabilities, weights, bias)
        np.testing.assert_allclose(np.asarray(loaded(probabilities)).ravel(), expected, rtol=1e-4, atol=1e-6)


def test_refit_epochs_are_the_ones_validation_chose():
    history = {"loss": [0.6, 0.4, 0.3, 0.2], "val_loss": [0.5, 0.35, 0.38, 0.4]}
    assert chosen_epochs(history, TrainingConfig(early_stopping_patience=2, restore_best_weights=True)) == 2
    # Without restored weights the model kept is the last epoch's, so the refit runs them all.
    assert chosen_epochs(history, TrainingConfig(early_stopping_patience=2, restore_best_weights=False)) == 4
    assert chosen_epochs(history, TrainingConfig(early_stopping_patience=None)) == 4


def test_refit_rows_are_train_then_validation_and_never_test():
    arrays = {f"{axis}_{split}": np.full((3, 2) if axis == "x" else (3,), index, dtype=np.int32)
              for index, split in enumerate(("train", "validation", "test")) for axis in ("x", "y")}
    x, y = refit_arrays(arrays)
    assert sorted(set(x.ravel())) == [0, 1] and sorted(set(y)) == [0, 1]
    assert rows_digest(x, y) != rows_digest(np.concatenate([x, arrays["x_test"]]), np.concatenate([y, arrays["y_test"]]))
