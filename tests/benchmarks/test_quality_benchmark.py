"""benchmarks/quality.py: epoch caps, the results file, and a table that never shows an unmeasured number."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from seqflow.sentiment.profiles import get_profile

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def quality():
    sys.path.insert(0, str(BENCHMARKS_DIR))
    spec = importlib.util.spec_from_file_location("quality_benchmark", BENCHMARKS_DIR / "quality.py")
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the module body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)
    sys.path.remove(str(BENCHMARKS_DIR))


def test_epoch_cap_reaches_per_architecture_epochs(quality):
    best = get_profile("best")
    capped = quality.cap_epochs(best, 2)
    for architecture in best.training.architectures:
        assert capped.training.for_architecture(architecture).epochs <= 2
    assert quality.cap_epochs(best, None) is best
    # Settings other than epochs stay as they were.
    assert capped.training.for_architecture("embedding_pool").bigram_buckets == best.training.for_architecture(
        "embedding_pool"
    ).bigram_buckets


def test_results_round_trip_and_unmeasured_rows_give_their_command(quality, tmp_path):
    measured = quality.Measurement(
        profile="seed-004-embedding", architecture="embedding_pool", test_accuracy=0.8612, best_val_accuracy=0.87,
        epochs=30, seconds_per_epoch=4.2, max_epochs=None, overrides=[], rows={"train": 16000, "validation": 4000, "test": 5000},
        machine="CPU, 2 CPUs", date_utc="2026-11-23 14:00 UTC", command="uv run python benchmarks/quality.py",
    )
    newer = quality.Measurement(**{**measured.__dict__, "test_accuracy": 0.8650, "max_epochs": 3})
    results_path = tmp_path / "results.json"
    quality.save_results(results_path, [measured, newer], [])
    (loaded,), overheads = quality.load_results(results_path)
    assert loaded == newer and overheads == []

    section = quality.render_section([loaded])
    embedding_row = next(line for line in section.splitlines() if line.startswith("| embedding_pool"))
    assert "0.859 (test)" in embedding_row and "0.8650 (capped at 3 epochs)" in embedding_row
    assert "not measured: `uv run python benchmarks/quality.py --profile best --arch embedding_pool`" in embedding_row
    lstm_row = next(line for line in section.splitlines() if line.startswith("| lstm"))
    assert "0." not in lstm_row  # nothing measured, nothing reported
    # Every measured cell names the command that measured it.
    assert "- `uv run python benchmarks/quality.py`: `seed-004-embedding` embedding_pool" in section.splitlines()

    overhead = quality.Overhead("embedding_pool", "best", 3, 33.0, 31.5, 30.0, "CPU", "2026-12-01 04:00 UTC", "cmd")
    assert overhead.ratio == pytest.approx(1.1) and overhead.fit_ratio == pytest.approx(1.05)
    # Rows stored before the tf.data baseline was recorded still render, with a dash for it.
    assert overhead.tracking_ratio is None
    rendered = quality.render_overhead([overhead])
    assert "1.100" in rendered and "| - | - |" in rendered
    assert "Target ratio <= 1.10: met (1.100, `best` embedding_pool" in rendered
    slower = dataclasses.replace(overhead, flow_training_seconds=36.0, date_utc="2026-12-01 05:00 UTC", pipeline_fit_seconds=24.0)
    assert slower.tracking_ratio == pytest.approx(1.5)
    # The newest measurement decides the verdict.
    assert "Target ratio <= 1.10: NOT met (1.200" in quality.render_overhead([overhead, slower])
    assert quality.render_overhead([]).rstrip().endswith("Target ratio <= 1.10: not measured")

    # Repeated runs: medians of every time, each run's own ratio, and a row that survives the JSON file.
    third = dataclasses.replace(slower, flow_training_seconds=30.0, bare_fit_seconds=25.0, pipeline_fit_seconds=26.0)
    combined = quality.combine_overheads([overhead, slower, third])
    assert (combined.runs, combined.flow_training_seconds, combined.bare_fit_seconds) == (3, 33.0, 30.0)
    # The ratio is the median of each run's own ratio (1.1, 1.2, 1.2), not the ratio of the medians (33 / 30).
    assert combined.ratio == pytest.approx(1.2)
    assert combined.pipeline_fit_seconds is None  # the first run had no tf.data baseline: no median of two
    assert combined.run_ratios == pytest.approx((1.1, 1.2, 1.2))
    assert "1.200 (median of 3 runs: 1.100, 1.200, 1.200)" in quality.render_overhead([combined])
    assert quality.combine_overheads([slower]) is slower
    quality.save_results(results_path, [], [combined])
    assert quality.load_results(results_path) == ([], [combined])


def test_targets_are_computed_from_full_runs_only(quality):
    def run(profile, architecture, accuracy, **changes):
        fields = dict(
            profile=profile, architecture=architecture, test_accuracy=accuracy, best_val_accuracy=accuracy, epochs=3,
            seconds_per_epoch=1.0, max_epochs=None, overrides=[], rows={"train": 1, "validation": 1, "test": 1},
            machine="CPU", date_utc="date", command="cmd",
        )
        return quality.Measurement(**{**fields, **changes})

    lines = quality.target_lines(
        [
            run("seed-004-embedding", "embedding_pool", 0.86),
            run("best", "embedding_pool", 0.8791),  # 0.859 + 0.02 = 0.879: met
            run("best", "simple_rnn", 0.79),
            run("best", "lstm", 0.95, max_epochs=1),  # capped: ignored
            run("best", "bilstm", 0.893),
            run("seed-000-bilstm", "bilstm", 0.88),  # no reported figure: our run + 0.02 = 0.90
        ]
    )
    text = "\n".join(lines)
    assert "`best` embedding_pool >= `seed-004-embedding` + 0.02 = 0.879 (0.859 reported): met (0.8791)" in text
    assert "`best` bilstm >= `seed-000-bilstm` + 0.02 = 0.900 (our run of its setting): NOT met (0.8930)" in text
    assert "`best` stacked_bilstm >= `seed-004-stacked-bilstm` + 0.02 = 0.864 (0.844 reported): not measured" in text
    assert "simple_rnn >= 0.80 on 500-token reviews (target: 500): NOT met (0.7900)" in text
    assert "best recurrent variant >= 0.89: met (0.8930), bilstm" in text
    assert "best variant overall >= 0.90 (aim 0.91): NOT met (0.8930), bilstm" in text
    assert quality.target_lines([])[-1] == "best variant overall >= 0.90 (aim 0.91): not measured"
