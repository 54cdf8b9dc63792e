"""Reviews scored per second by the sentiment pyfunc (what `seqflow predict` and `seqflow serve` run).

    uv run python benchmarks/predict_throughput.py [--arch nbsvm] [--profile quick] [--reviews 25000]
                                                   [--model-uri models:/NAME@champion]

Without --model-uri it builds the serving model the profile's training would register for ``--arch`` (the
quick profile's vocabulary adapted on the reviews, the architecture's settings, untrained weights: the time per
review does not depend on what was learned), saves it and loads it the way MLflow does (``load_context``). The
reviews are the embedded IMDB reviews. One warm-up call on 256 reviews, then one timed call on all of them
(the pyfunc's ``predict``, as `seqflow serve` and `seqflow predict TEXT...` call it), then, timed too, the same
reviews as a CSV file through `seqflow predict --input FILE --output FILE`'s streaming (read, score in batches,
write). Prints the numbers; copy them into BENCHMARKS.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd


def _embedded_reviews(count: int) -> list[str]:
    from seqflow.sentiment.sources import embedded_csv_path

    frame = pd.read_csv(embedded_csv_path())
    texts = frame.loc[frame["source"] == "imdb", "text"].astype(str).tolist()
    return (texts * (count // len(texts) + 1))[:count]


def _built_pyfunc(arch: str, profile: str, texts: list[str], folder: Path):  # noqa: ANN202 - a ReviewSentimentModel
    import tensorflow as tf

    from seqflow.sentiment.profiles import get_profile
    from seqflow.models.architectures import build_model, build_serving_model
    from seqflow.models.text import build_vectoriser
    from seqflow.sentiment.serving import KERAS_ARTIFACT, ReviewSentimentModel
    from seqflow.sentiment.train import model_spec

    config = get_profile(profile)
    tokenisation = config.tokenisation
    vectoriser = build_vectoriser(tokenisation.vocab_size)
    vectoriser.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(1024))
    vocabulary = [str(token) for token in vectoriser.get_vocabulary()]
    classifier = build_model(arch, model_spec(config.training.for_architecture(arch), len(vocabulary)))
    serving = build_serving_model(classifier, vocabulary, tokenisation.max_length, tokenisation.padding, tokenisation.truncation)
    path = folder / "serving.keras"
    serving.save(path)
    model = ReviewSentimentModel()
    model.load_context(SimpleNamespace(artifacts={KERAS_ARTIFACT: str(path)}))
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="nbsvm")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--reviews", type=int, default=25_000)
    parser.add_argument("--model-uri", help="score a registered model instead (uses MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    texts = _embedded_reviews(args.reviews)
    with tempfile.TemporaryDirectory() as scratch:
        if args.model_uri:
            import mlflow.pyfunc

            model = mlflow.pyfunc.load_model(args.model_uri)
            predict = model.predict
        else:
            pyfunc = _built_pyfunc(args.arch, args.profile, texts, Path(scratch))
            predict = lambda frame: pyfunc.predict(None, frame)  # noqa: E731
        predict(pd.DataFrame({"text": texts[:256]}))
        started = time.perf_counter()
        predictions = predict(pd.DataFrame({"text": texts}))
        elapsed = time.perf_counter() - started
        assert len(predictions) == len(texts)

        from seqflow.sentiment.batch import score_file

        source, scored = Path(scratch) / "reviews.csv", Path(scratch) / "scored.csv"
        pd.DataFrame({"text": texts}).to_csv(source, index=False)
        reviews, file_seconds = score_file(SimpleNamespace(predict=predict), str(source), str(scored))
        assert reviews == len(texts)
    what = args.model_uri or f"{args.arch} ({args.profile} profile, untrained weights)"
    print(f"model {what}; {os.cpu_count()} logical CPUs")
    print(f"pyfunc predict: {len(texts):,} reviews in {elapsed:.2f} s: {len(texts) / elapsed:,.0f} reviews/s")
    print(f"predict --input CSV --output CSV: {reviews:,} reviews in {file_seconds:.2f} s: "
          f"{reviews / file_seconds:,.0f} reviews/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
