"""Ensemble combinations from classifiers a `seqflow run` already saved, without training: the mean and the
logistic stack of :mod:`seqflow.sentiment.ensemble` (the same functions the `ensemble` step uses), fitted on the
validation split and scored on the test split of one tokenised-arrays file.

Each member is ``NAME=PATH`` or ``NAME=VALIDATION_PATH,TEST_PATH``: the second form fits the stack on one
classifier's validation predictions and scores another on test, as the step does with ``training.refit``
(the stack is fitted on the fit that chose the epochs, the refitted model is scored). Every subset of two or
more members is reported.

Usage::

    uv run python benchmarks/ensemble_combinations.py --arrays ARTIFACTS/tokenised/ID/arrays.npz \\
        --member nbsvm=.../nbsvm.keras,.../nbsvm_refit.keras --member embedding_pool=.../embedding_pool.keras
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", required=True, help="a run's tokenised arrays.npz")
    parser.add_argument("--member", action="append", required=True, help="NAME=PATH or NAME=VALIDATION_PATH,TEST_PATH")
    args = parser.parse_args()

    import keras

    import seqflow.core.optimizers  # noqa: F401 - registers LazyAdam
    import seqflow.models.text  # noqa: F401 - registers the custom layers
    from seqflow.core.evaluation import classification_metrics
    from seqflow.sentiment.ensemble import combine, fit_stack

    arrays = np.load(args.arrays)
    predictions: dict[str, dict[str, np.ndarray]] = {}
    for spec in args.member:
        name, paths = spec.split("=", 1)
        validation_path, test_path = (paths.split(",") + [paths])[:2]
        predictions[name] = {}
        for split, path in (("validation", validation_path), ("test", test_path)):
            model = keras.saving.load_model(path, safe_mode=True)
            predictions[name][split] = np.asarray(model.predict(arrays[f"x_{split}"], batch_size=256, verbose=0)).ravel()
        test = classification_metrics(predictions[name]["test"], arrays["y_test"])
        print(f"{name:40s} single   test acc {test['accuracy']:.4f} loss {test['loss']:.4f}")
    for size in range(2, len(predictions) + 1):
        for names in itertools.combinations(predictions, size):
            validation = np.stack([predictions[n]["validation"] for n in names], axis=1)
            test = np.stack([predictions[n]["test"] for n in names], axis=1)
            for method in ("average", "stack"):
                weights, bias = fit_stack(validation, arrays["y_validation"]) if method == "stack" else ([], 0.0)
                on_validation = classification_metrics(combine(validation, weights, bias), arrays["y_validation"])
                on_test = classification_metrics(combine(test, weights, bias), arrays["y_test"])
                print(
                    f"{' + '.join(names):40s} {method:8s} val acc {on_validation['accuracy']:.4f} loss "
                    f"{on_validation['loss']:.4f} | test acc {on_test['accuracy']:.4f} loss {on_test['loss']:.4f}"
                    f" | weights {np.round(weights, 3).tolist()} bias {bias:.3f}"
                )


if __name__ == "__main__":
    main()
