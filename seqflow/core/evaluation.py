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
    """How far a run overfitted, from its per-epoch history; logged as child-run metrics so that the MLflow
    runs table sorts by them.

    - ``best_epoch``: the 1-based epoch with the lowest validation loss (the weights early stopping restores).
    - ``gap_at_best`` / ``gap_at_end``: training minus validation accuracy at the best and at the last epoch
      trained; positive means the model fits its training data better than unseen data.
    - ``loss_gap_at_best`` / ``loss_gap_at_end``: validation minus training loss at the same epochs; also
      positive when overfitting, and it shows earlier than the accuracy gap.
    - ``epochs_past_best``: epochs trained after the best one (how long training went on getting worse).
    """
    loss = history.get("loss") or []
    val_loss = history.get("val_loss") or []
    accuracy = history.get("accuracy") or []
    val_accuracy = history.get("val_accuracy") or []
    if not val_loss:
        return {}
    best_index = int(np.argmin(val_loss))
    last = len(val_loss) - 1

    def accuracy_gap(index: int) -> float:
        return float(accuracy[index] - val_accuracy[index]) if accuracy and val_accuracy else float("nan")

    def loss_gap(index: int) -> float:
        return float(val_loss[index] - loss[index]) if loss else float("nan")

    return {
        "epochs_run": float(len(val_loss)),
        "best_epoch": float(best_index + 1),
        "best_val_loss": float(val_loss[best_index]),
        "best_val_accuracy": float(max(val_accuracy)) if val_accuracy else float("nan"),
        "gap_at_best": accuracy_gap(best_index),
        "gap_at_end": accuracy_gap(last),
        "loss_gap_at_best": loss_gap(best_index),
        "loss_gap_at_end": loss_gap(last),
        "epochs_past_best": float(last - best_index),
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


# The two panels of the overlay figure: (history key, axis label).
OVERLAY_PANELS = (("loss", "loss (binary cross-entropy)"), ("accuracy", "accuracy"))


def _overlay_series(histories: dict[str, dict[str, list[float]]]):  # noqa: ANN202 - an iterator of tuples
    """``(panel, architecture, split, epochs, values)`` for every curve of the overlay figures, in drawing order."""
    for panel, (metric, _) in enumerate(OVERLAY_PANELS):
        for architecture, history in histories.items():
            for split, key in (("train", metric), ("validation", f"val_{metric}")):
                values = history.get(key) or []
                if values:
                    yield panel, architecture, split, list(range(1, len(values) + 1)), [float(v) for v in values]


def plot_overlay_png(histories: dict[str, dict[str, list[float]]], title: str, path: Path) -> Path:
    """Every architecture's training (dashed) and validation (solid) loss and accuracy on two shared panels:
    one colour per architecture, so where each one's validation curve turns away from its training curve shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = {architecture: f"C{index % 10}" for index, architecture in enumerate(histories)}
    for panel, architecture, split, epochs, values in _overlay_series(histories):
        axes[panel].plot(
            epochs, values, color=colours[architecture], marker="o", markersize=3,
            linestyle="-" if split == "validation" else "--", label=f"{architecture} {split}",
        )  # fmt: skip
    for axis, (_, label) in zip(axes, OVERLAY_PANELS):
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.suptitle(f"{title} (dashed: train, solid: validation)")
    return _save_figure(figure, path)


def plot_overlay_html(histories: dict[str, dict[str, list[float]]], title: str, path: Path) -> Path:
    """The same overlay as an interactive page (hover values, click legend entries to hide curves).

    The file is self-contained: plotly.js is inlined, so it opens offline and from MLflow's artifact view.
    """
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=[label for _, label in OVERLAY_PANELS])
    # D3's palette is matplotlib's default one: an architecture has the same colour in the PNG and the page.
    colours = {architecture: qualitative.D3[index % len(qualitative.D3)] for index, architecture in enumerate(histories)}
    for panel, architecture, split, epochs, values in _overlay_series(histories):
        figure.add_trace(
            go.Scatter(
                x=epochs, y=values, mode="lines+markers", name=f"{architecture} {split}", legendgroup=architecture,
                line={"color": colours[architecture], "dash": "solid" if split == "validation" else "dash"},
                # One legend entry per curve, from the first panel; the group toggles both panels together.
                showlegend=panel == 0,
            ),
            row=1, col=panel + 1,
        )  # fmt: skip
    for column, (_, label) in enumerate(OVERLAY_PANELS, start=1):
        figure.update_xaxes(title_text="epoch", dtick=1, row=1, col=column)
        figure.update_yaxes(title_text=label, row=1, col=column)
    figure.update_layout(title=f"{title} (dashed: train, solid: validation)", hovermode="x unified")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(path, include_plotlyjs=True, full_html=True)
    return path
