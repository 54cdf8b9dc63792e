"""Evaluation on the held-out test split, overfitting figures from the training history, and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Probability above which a review is called positive.
DECISION_THRESHOLD = 0.5


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, log loss, ROC AUC, F1, and the confusion matrix cells, for binary labels."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, roc_auc_score

    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(int)
    predicted = (probabilities >= DECISION_THRESHOLD).astype(int)
    both_classes = len(np.unique(labels)) == 2
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "loss": float(log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "roc_auc": float(roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "true_negatives": float(tn),
        "false_positives": float(fp),
        "false_negatives": float(fn),
        "true_positives": float(tp),
    }


def overfitting_figures(history: dict[str, list[float]]) -> dict[str, float]:
    """Where validation loss was lowest and how far training accuracy ran ahead of validation.

    ``best_epoch`` is 1-based; ``gap`` is training minus validation accuracy (positive means overfitting).
    """
    val_loss = history.get("val_loss") or []
    accuracy = history.get("accuracy") or []
    val_accuracy = history.get("val_accuracy") or []
    if not val_loss:
        return {}
    best_index = int(np.argmin(val_loss))
    last = len(val_loss) - 1
    return {
        "epochs_run": float(len(val_loss)),
        "best_epoch": float(best_index + 1),
        "best_val_loss": float(val_loss[best_index]),
        "best_val_accuracy": float(max(val_accuracy)) if val_accuracy else float("nan"),
        "gap_at_best": float(accuracy[best_index] - val_accuracy[best_index]) if val_accuracy else float("nan"),
        "gap_at_end": float(accuracy[last] - val_accuracy[last]) if val_accuracy else float("nan"),
        "epochs_since_best": float(last - best_index),
    }


def _save_figure(figure, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_learning_curves(
    history: dict[str, list[float]], title: str, path: Path, metrics: tuple[str, str] = ("loss", "accuracy")
) -> Path:
    """Two metrics per epoch (loss and accuracy unless told), training against validation, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, metrics):
        axis.plot(epochs, history.get(metric, []), marker="o", label=f"train {metric}")
        axis.plot(epochs, history.get(f"val_{metric}", []), marker="o", label=f"validation {metric}")
        axis.set_xlabel("epoch")
        # Whole epochs only: 1.25 epochs means nothing here.
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    val_loss = history.get("val_loss") or []
    if val_loss:
        best = int(np.argmin(val_loss)) + 1
        for axis in axes:
            axis.axvline(best, color="grey", linestyle="--", linewidth=1)
        axes[0].annotate(f"best epoch {best}", (best, min(val_loss)), textcoords="offset points", xytext=(5, 10))
    figure.suptitle(title)
    return _save_figure(figure, path)


def plot_confusion_matrix(metrics: dict[str, float], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = np.array(
        [[metrics["true_negatives"], metrics["false_positives"]], [metrics["false_negatives"], metrics["true_positives"]]]
    )
    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.imshow(cells, cmap="Blues")
    for (row, column), count in np.ndenumerate(cells):
        colour = "white" if count > cells.max() / 2 else "black"
        axis.text(column, row, f"{int(count)}", ha="center", va="center", color=colour, fontsize=14)
    axis.set_xticks([0, 1], ["negative", "positive"])
    axis.set_yticks([0, 1], ["negative", "positive"])
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    axis.set_title(title)
    return _save_figure(figure, path)
