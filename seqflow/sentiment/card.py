"""The sentiment pipeline's part of a version's model card (see :mod:`seqflow.core.cards`): what a review
classifier is, takes and returns, the reviews it learned from, how it was trained and how well it did on the
held-out test split, with 95% intervals, overfitting figures and behavioural pass rates."""

from __future__ import annotations

from seqflow.core.cards import CardContent, CardFacts, count, input_and_output, number, table, wilson_interval
from seqflow.core.pipeline import Card

PURPOSE = (
    "Binary sentiment of English movie reviews: each version takes the raw review text and returns the probability "
    "that the review is positive and a 0/1 label. Trained from scratch on IMDB-style reviews by `seqflow run`; "
    "the `champion` alias is the version `seqflow predict` and `seqflow serve` use. Promotions pass the gates of "
    "the profile (accuracy floor, margin over the champion) and are audited below."
)
SPLITS = ("train", "validation", "test")
# What each behavioural check asks (see seqflow.sentiment.behaviour).
BEHAVIOUR_CHECKS = {
    "invariance": "(nearly) the same probability when only actor and film names change",
    "direction": "adding a strong negative cue (a negation, \"awful\") lowers the probability",
    "minimum_functionality": "short, plain, clearly positive or negative reviews get the right label",
}
# Run params that are bookkeeping, not what decides the model.
NOT_DECIDING = (
    "artifacts_dir", "data.", "contracts.", "promotion.", "behaviour.", "profile", "training.checkpoint",
    "training.architectures",
)


def _architecture_summary(architecture: str) -> str:
    """The first line of the architecture builder's docstring (what the network is), read from the source
    without importing it (that would import Keras and TensorFlow, for one line)."""
    import ast
    from importlib.util import find_spec
    from pathlib import Path

    try:
        tree = ast.parse(Path(find_spec("seqflow.models.architectures").origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, AttributeError, ImportError):
        return architecture
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == f"build_{architecture}":
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            return doc[0].rstrip(".") if doc else architecture
    return architecture


def _interval(successes: float | None, trials: float | None) -> str:
    if successes is None or trials is None or trials <= 0:
        return "-"
    low, high = wilson_interval(successes, trials)
    return f"[{low:.4f}, {high:.4f}]"


def _results(facts: CardFacts) -> str:
    metric = facts.metrics.get
    tp, tn = metric("test_true_positives"), metric("test_true_negatives")
    fp, fn = metric("test_false_positives"), metric("test_false_negatives")
    cells = None not in (tp, tn, fp, fn)
    test_rows = (tp + tn + fp + fn) if cells else facts.parent_metrics.get("rows_test")
    accuracy = metric("test_accuracy")
    rows = [
        ("accuracy", number(accuracy), _interval(accuracy * test_rows if accuracy is not None and test_rows else None, test_rows),
         f"Wilson, n = {count(test_rows)} test reviews"),
        ("precision", number(tp / (tp + fp)) if cells and tp + fp else "-", _interval(tp, tp + fp) if cells else "-",
         "Wilson, n = reviews predicted positive"),
        ("recall", number(tp / (tp + fn)) if cells and tp + fn else "-", _interval(tp, tp + fn) if cells else "-",
         "Wilson, n = positive reviews"),
        ("F1", number(metric("test_f1")), "-", ""),
        ("ROC AUC", number(metric("test_roc_auc")), "-", ""),
        ("log loss", number(metric("test_loss")), "-", "lower is better"),
    ]
    text = "Measured once, on the held-out test split, after training ended.\n\n"
    text += table(("test metric", "value", "95% interval", "interval"), [row for row in rows if row[1] != "-"])
    if cells:
        text += "\n\n" + table(("", "predicted negative", "predicted positive"), [
            ("negative review", count(tn), count(fp)), ("positive review", count(fn), count(tp)),
        ])
    text += "\n\n**Overfitting** (train minus validation accuracy; validation minus train loss):\n\n" + table(
        ("best epoch", "epochs past best", "accuracy gap at best", "at end", "loss gap at best", "at end"),
        [(count(metric("best_epoch")), count(metric("epochs_past_best")), *(number(metric(key), 3) for key in (
            "gap_at_best", "gap_at_end", "loss_gap_at_best", "loss_gap_at_end")))],
    )
    behaviour = [
        (check, number(metric(f"behaviour_{check}_pass_rate"), 2), meaning)
        for check, meaning in BEHAVIOUR_CHECKS.items() if metric(f"behaviour_{check}_pass_rate") is not None
    ]
    if behaviour:
        text += "\n\n**Behavioural checks** (the served model on hand-written reviews; failures in `behaviour.json`):\n\n"
        text += table(("check", "pass rate", "what it checks"), behaviour)
    text += (
        "\n\n![per-epoch training and validation curves](plots/learning_curves.png)\n\n"
        f"_Per-epoch curves: artifact `plots/learning_curves.png` of run `{facts.run_id}`; the values per epoch are "
        "in `history.json` and the run's metric charts._"
    )
    return text


def _data(facts: CardFacts) -> str:
    parent = facts.parent_metrics
    rows = [
        (split, count(parent.get(f"rows_{split}")), f"`{facts.tag(f'{split}_digest')[:16]}`",
         number(parent.get(f"oov_rate_{split}"), 4))
        for split in SPLITS
    ]
    return (
        f"Source: `{facts.tag('source')}`; dataset digest `{facts.tag('dataset_digest')[:16]}` (SHA-256 of the three "
        f"splits' contents; full digests in the version's tags). Vocabulary: {count(parent.get('vocab_size'))} "
        f"tokens adapted on the training split; reviews padded or cut to {facts.params.get('tokenisation.max_length', '?')} "
        "tokens.\n\n" + table(("split", "reviews", "content digest", "out-of-vocabulary token rate"), rows)
        + "\n\nThe splits are logged as the run's dataset inputs (training, validation, test) and checked by the "
        "raw and tokenised data contracts before training (see the parent run's description)."
    )


def _training(facts: CardFacts) -> str:
    metric = facts.metrics.get
    deciding = sorted(
        (key, value) for key, value in facts.params.items()
        if value not in ("", "None") and not key.startswith(NOT_DECIDING) and key != "architecture"
    )
    epochs = facts.epochs.get("val_loss") or []
    head = (
        f"Profile `{facts.tag('profile')}`; {count(metric('epochs_run') or len(epochs))} epochs run, best epoch "
        f"{count(metric('best_epoch'))} (lowest validation loss; its weights are the model's), "
        f"{number(metric('train_seconds'), 1)} s ({number(metric('seconds_per_epoch'), 1)} s per epoch)"
        + (f", resumed from epoch {count(metric('resumed_from_epoch'))}" if metric("resumed_from_epoch") else "")
        + f". Training fingerprint `{facts.tag('seqflow.training_fingerprint')[:16]}`.\n\n"
    )
    return head + "Settings that decide the model:\n\n" + table(("setting", "value"), deciding)


def sentiment_card(facts: CardFacts) -> CardContent:
    """The sentiment sections of ``facts``' card."""
    architecture = facts.architecture
    max_length = facts.params.get("tokenisation.max_length", "?")
    return CardContent(
        title=f"{architecture} review sentiment classifier",
        sections=[
            ("What it is", f"`{architecture}`: {_architecture_summary(architecture)}. A binary classifier of English "
             "movie reviews, trained from scratch (no pretrained weights) with Keras 3; text processing is part of "
             "the model, so it takes raw text."),
            input_and_output([
                ("input", "text", "string", "a raw review, any length (standardised, tokenised with the model's own "
                 f"vocabulary, padded or cut to {max_length} tokens inside the model)"),
                ("output", "probability", "double", "probability that the review is positive, in [0, 1]"),
                ("output", "label", "long", "1 (positive) when probability >= 0.5, else 0 (negative)"),
            ]),
            ("Data", _data(facts)),
            ("Training", _training(facts)),
            ("Results", _results(facts)),
        ],
        usage=[
            f'seqflow predict --model-uri {facts.model_uri} "A wonderful, moving film."',
            f"seqflow predict --model-uri {facts.model_uri} --input reviews.csv --output scored.csv",
        ],
        limits=[
            "English movie reviews only, as in its training data; other domains and languages are untested.",
            f"Reads the {'last' if facts.params.get('tokenisation.truncation') == 'pre' else 'first'} {max_length} "
            "tokens of a longer review; words outside its vocabulary count as one unknown token.",
            "Two classes only: mixed or neutral reviews still get a label; the probability is not calibrated beyond "
            "what the test log loss shows.",
            f"Test metrics come from {count(facts.parent_metrics.get('rows_test'))} reviews: see the intervals "
            "before reading a small difference between versions as real.",
            "Behavioural checks are a handful of hand-written cases, not a guarantee of robustness.",
        ],
    )


CARD = Card(purpose=PURPOSE, content=sentiment_card)
