"""training.max_train_rows: an architecture fits on a seeded, stratified sample of the training rows while the
splits stay shared; a changed limit changes that architecture's training (cache key, fingerprint) only. The
pipeline side (logged param and row count, the refit's rows) is in tests/flows/test_ensemble_refit.py."""

from __future__ import annotations

import numpy as np
import pytest

from seqflow.core.errors import ConfigError
from seqflow.sentiment.config import PipelineConfig, with_overrides
from seqflow.sentiment.refit import refit_arrays
from seqflow.sentiment.train import stratified_rows, training_fingerprint, training_subset


def test_sample_has_exactly_the_limit_keeps_label_shares_and_depends_on_the_seed_only():
    labels = np.array([1] * 300 + [0] * 700)
    rows = stratified_rows(labels, 100, seed=7)
    assert len(rows) == len(set(rows.tolist())) == 100
    assert labels[rows].sum() == 30
    assert np.array_equal(rows, np.sort(rows))
    assert np.array_equal(rows, stratified_rows(labels, 100, seed=7))
    assert not np.array_equal(rows, stratified_rows(labels, 100, seed=8))
    # No limit, or one at or above the split's size: every row, in order.
    for limit in (None, 1000, 5000):
        assert np.array_equal(stratified_rows(labels, limit, seed=7), np.arange(1000))
    # A label far rarer than 1 / limit still gets a row.
    skewed = np.array([1] + [0] * 99)
    assert sorted(skewed[stratified_rows(skewed, 2, seed=0)].tolist()) == [0, 1]


def test_only_the_training_rows_are_cut_and_a_refit_adds_validation_to_the_same_sample():
    rng = np.random.default_rng(0)
    arrays = {
        f"{axis}_{split}": rng.integers(0, 50, (rows, 4)) if axis == "x" else rng.integers(0, 2, rows)
        for split, rows in (("train", 60), ("validation", 10), ("test", 20)) for axis in ("x", "y")
    }
    cut = training_subset(arrays, 25, seed=3)
    assert len(cut["x_train"]) == len(cut["y_train"]) == 25
    assert all(np.array_equal(cut[key], arrays[key]) for key in ("x_validation", "y_validation", "x_test", "y_test"))
    x, y = refit_arrays(arrays, 25, seed=3)
    np.testing.assert_array_equal(x, np.concatenate([cut["x_train"], arrays["x_validation"]]))
    np.testing.assert_array_equal(y, np.concatenate([cut["y_train"], arrays["y_validation"]]))
    assert training_subset(arrays, None, seed=3) is arrays


def test_a_changed_limit_retrains_that_architecture_only():
    base = PipelineConfig()
    limited = with_overrides(base, {"training.per_architecture.lstm.max_train_rows": "3000"})
    assert limited.training.for_architecture("lstm").max_train_rows == 3000
    assert limited.architecture_params("lstm")["training.max_train_rows"] == 3000
    # What the train step's cache key and the checkpoint fingerprint are made of.
    assert limited.training.settings_of("lstm") != base.training.settings_of("lstm")
    for architecture in ("nbsvm", "embedding_pool", "bilstm"):
        assert limited.training.settings_of(architecture) == base.training.settings_of(architecture)
        assert training_fingerprint("d", 100, architecture, limited.training, 1) == training_fingerprint(
            "d", 100, architecture, base.training, 1
        )
    assert training_fingerprint("d", 100, "lstm", limited.training, 1) != training_fingerprint("d", 100, "lstm", base.training, 1)


@pytest.mark.parametrize("value", ["1", "0", "-5", "many"])
def test_a_limit_below_two_rows_is_refused_naming_the_field(value):
    with pytest.raises(ConfigError, match=r"max_train_rows") as refused:
        with_overrides(PipelineConfig(), {"training.per_architecture.lstm.max_train_rows": value})
    assert "\n" not in str(refused.value)
