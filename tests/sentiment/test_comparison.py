"""The sentiment comparison table as it renders (seqflow/sentiment/comparison.py)."""

from seqflow.sentiment.comparison import ComparisonRow, RunSummary


def _row(architecture: str, epochs: int, **figures) -> ComparisonRow:
    return ComparisonRow(
        architecture=architecture, epochs=epochs, best_val_accuracy=0.9, test_accuracy=0.9, roc_auc=0.95,
        seconds=1.0, version="1", champion=False, **figures,
    )


def test_a_model_without_its_own_epochs_shows_dashes_not_nan():
    trained = _row("nbsvm", 4, gap_at_end=0.088, best_epoch=3, gap_at_best=0.089, epochs_past_best=1)
    # What the evaluation records for an ensemble: no history, so no gaps (nan) and no epochs.
    ensemble = _row("ensemble", 0, gap_at_end=float("nan"), best_epoch=1)
    table = RunSummary(
        parent_run_id="p", experiment_name="e", registered_model_name="m", rows=[trained, ensemble],
        decision_reason="first champion", champion_version="1",
    ).render()
    lines = {line.split()[0]: line.split() for line in table.splitlines() if line.split()[:1] in (["nbsvm"], ["ensemble"])}
    assert "nan" not in table
    assert lines["nbsvm"][1:4] == ["4", "3", "1"] and "+0.089" in lines["nbsvm"] and "+0.088" in lines["nbsvm"]
    assert lines["ensemble"][1:4] == ["0", "-", "-"] and lines["ensemble"][7:9] == ["-", "-"]
