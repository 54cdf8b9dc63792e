"""``seqflow predict --input FILE|- --output FILE``: files of reviews scored in batches through the CLI.

The model is a tiny untrained serving model saved as the sentiment pyfunc in a local folder (``--model-uri
DIR``): what is tested is reading, batching, numbering and writing, not what the model learned.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import new_empty_store

VOCABULARY = ["", "[UNK]", "good", "bad", "film", "café"]


@pytest.fixture(scope="module")
def pyfunc_dir(tmp_path_factory) -> Path:
    from seqflow.core.trusted_models import save_from_code
    from seqflow.models.architectures import ModelSpec, build_model, build_serving_model
    from seqflow.sentiment.serving import KERAS_ARTIFACT, REVIEW_SENTIMENT

    folder = tmp_path_factory.mktemp("batch-model")
    classifier = build_model("embedding_pool", ModelSpec(vocab_size=len(VOCABULARY), embedding_dim=4))
    build_serving_model(classifier, VOCABULARY, max_length=8, padding="post", truncation="post").save(folder / "serving.keras")
    # As seqflow logs it (models from code), so `seqflow predict` recognises the kind it needs.
    save_from_code(REVIEW_SENTIMENT, folder / "model", {KERAS_ARTIFACT: str(folder / "serving.keras")}, None, None, [])
    return folder / "model"


@pytest.fixture
def predict(pyfunc_dir: Path, tmp_path: Path, capfd):
    """``seqflow predict --model-uri DIR ARGS...`` in this process: (exit code, stdout, stderr)."""
    from seqflow.cli import main

    new_empty_store(tmp_path / "store" / "mlflow.db")
    env_file = tmp_path / "predict.env"
    env_file.write_text(f"MLFLOW_TRACKING_URI=sqlite:///{tmp_path / 'store' / 'mlflow.db'}\n")

    def run(*args: str) -> tuple[int, str, str]:
        capfd.readouterr()
        # main() sets up logging on the captured stderr, which is closed after the test: leave no handler behind.
        handlers = list(logging.root.handlers)
        try:
            code = main(["--env-file", str(env_file), "predict", "--model-uri", str(pyfunc_dir), *args])
        finally:
            logging.root.handlers[:] = handlers
        captured = capfd.readouterr()
        return code, captured.out, captured.err

    return run


def test_csv_file_is_scored_into_csv_with_its_columns_kept(predict, tmp_path: Path):
    source = tmp_path / "reviews.csv"
    with open(source, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([["007", "good film"], ["8", 'bad, "bad"\nfilm'], ["9", "un café"]])
    output = tmp_path / "scored.csv"
    code, stdout, stderr = predict("--input", str(source), "--output", str(output))
    assert code == 0, stderr
    assert "scored 3 reviews in" in stderr and stdout == ""
    with open(output, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == ["007", "8", "9"]
    assert rows[1]["text"] == 'bad, "bad"\nfilm'
    assert list(rows[0]) == ["id", "text", "probability", "label"]
    probabilities = np.array([float(row["probability"]) for row in rows])
    assert np.isfinite(probabilities).all()
    assert [int(row["label"]) for row in rows] == (probabilities >= 0.5).astype(int).tolist()


def test_jsonl_file_is_scored_into_jsonl_and_stdin_text_into_csv(predict, tmp_path: Path, monkeypatch):
    source = tmp_path / "reviews.jsonl"
    source.write_text('{"id": 1, "text": "good film"}\n{"id": 2, "text": "bad"}\n', encoding="utf-8")
    output = tmp_path / "scored.jsonl"
    code, _, stderr = predict("--input", str(source), "--output", str(output))
    assert code == 0, stderr
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["text"]) for r in records] == [(1, "good film"), (2, "bad")]
    assert all(0 <= r["probability"] <= 1 and r["label"] in (0, 1) for r in records)

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"good film\r\nbad film\n")))
    code, stdout, stderr = predict("--input", "-")
    assert code == 0, stderr
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert [row["text"] for row in rows] == ["good film", "bad film"]


def test_unscorable_rows_are_named_by_their_row_in_the_whole_file_and_no_output_is_left(predict, tmp_path: Path, monkeypatch):
    from seqflow.sentiment import batch

    monkeypatch.setattr(batch, "BATCH_ROWS", 2)
    source = tmp_path / "reviews.txt"
    # Row 4 is not UTF-8 (a Latin-1 "é"), row 5 leaves no word: both in the third or later batch of two.
    source.write_bytes(b"good\nbad\nfilm\ncaf\xe9 \xff\n!!!\ngood\n")
    output = tmp_path / "out" / "scored.csv"
    output.parent.mkdir()
    code, _, stderr = predict("--input", str(source), "--output", str(output))
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert "batch of rows 3 to 4" in stderr and "row 4 is not valid UTF-8" in stderr and "row 2 of" not in stderr
    assert list(output.parent.iterdir()) == []  # neither the output nor a partial file

    source.write_bytes(b"good\nbad\nfilm\ngood\n!!!\n")
    code, _, stderr = predict("--input", str(source), "--output", str(output))
    assert code == 2 and "row 5 ('!!!')" in stderr and list(output.parent.iterdir()) == []


def test_batches_are_read_lazily(tmp_path: Path, monkeypatch):
    from seqflow.sentiment import batch

    monkeypatch.setattr(batch, "BATCH_ROWS", 3)
    read: list[str] = []

    def lines():
        for number in range(10):
            read.append(str(number))
            yield f"review {number}\n"

    batches = batch.read_batches(lines(), "text", "test input")
    first = next(batches)
    assert first["text"].tolist() == ["review 0", "review 1", "review 2"] and len(read) == 3
    assert [len(frame) for frame in batches] == [3, 3, 1]


def test_predict_refuses_mixed_or_misplaced_options(predict, tmp_path: Path):
    assert predict("good film", "--input", "x.csv")[0] == 2
    code, _, stderr = predict("--input", str(tmp_path))
    assert code == 2 and "is a folder" in stderr
    code, _, stderr = predict("--input", str(tmp_path / "missing.csv"))
    assert code == 2 and "--input file" in stderr and "does not exist" in stderr
    (tmp_path / "reviews.xlsx").write_bytes(b"PK")
    code, _, stderr = predict("--input", str(tmp_path / "reviews.xlsx"))
    assert code == 2 and "cannot tell the format" in stderr
    code, _, stderr = predict("good film", "--output", "x.csv")
    assert code == 2 and "--output and --format go with --input FILE" in stderr


def test_invalid_utf8_argument_is_refused_by_row_without_traceback(pyfunc_dir: Path, tmp_path: Path):
    new_empty_store(tmp_path / "mlflow.db")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "seqflow.cli", "predict", "--model-uri", str(pyfunc_dir), b"\xff\xfe great film", "good film"],
        cwd=tmp_path, env=env, capture_output=True, timeout=300,
    )
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "seqflow: error: 1 of 2 review(s) are not UTF-8 text: row 1 of 2 is not valid UTF-8" in stderr
