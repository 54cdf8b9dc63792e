"""Missing or damaged files between steps and behind the registry: one clear error naming the file and the fix.

Tokenised arrays and vocabulary come from a real tokenisation of real reviews; the registered model is a real
(untrained) serving model logged and registered in a SQLite MLflow store, then damaged on disk before
``seqflow predict`` (the CLI's ``main``, stderr captured at the file-descriptor level) loads it.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from seqflow.sentiment.config import DataConfig, TokenisationConfig
from seqflow.sentiment.datasets import split_source, write_splits
from seqflow.core.errors import DataSourceError
from seqflow.core.settings import TrackingSettings
from seqflow.sentiment.sources import SourceData
from seqflow.sentiment.tokenise import TokenisedData, load_arrays, load_vocabulary, pad_and_tokenise

TOKENISATION = TokenisationConfig(vocab_size=800, max_length=32)


@pytest.fixture(scope="module")
def tokenised_once(tmp_path_factory: pytest.TempPathFactory, short_reviews: pd.DataFrame) -> TokenisedData:
    artifacts_dir = tmp_path_factory.mktemp("tokenised")
    source = SourceData(spec="short", train=short_reviews)
    data_config = DataConfig(source="short")
    split_files = write_splits(split_source(source, data_config, 3), source, data_config, 3, artifacts_dir)
    return pad_and_tokenise(split_files, TOKENISATION, artifacts_dir)


@pytest.fixture
def tokenised(tokenised_once: TokenisedData, tmp_path: Path) -> TokenisedData:
    """A private copy of the tokenised folder that a test may damage."""
    folder = tmp_path / "tokenised"
    shutil.copytree(tokenised_once.tokenised_dir, folder)
    return dataclasses.replace(
        tokenised_once,
        tokenised_dir=folder,
        vocabulary_path=folder / tokenised_once.vocabulary_path.name,
        arrays_path=folder / tokenised_once.arrays_path.name,
    )


def _rerun_advice(tokenised: TokenisedData) -> str:
    return f"delete {str(tokenised.tokenised_dir)!r} and run `seqflow validate`"


def test_intact_files_load(tokenised: TokenisedData) -> None:
    arrays = load_arrays(tokenised)
    assert arrays["x_train"].shape[1] == TOKENISATION.max_length
    assert len(load_vocabulary(tokenised.vocabulary_path)) == tokenised.vocab_size


def test_deleted_arrays_name_the_file_and_the_fix(tokenised: TokenisedData) -> None:
    tokenised.arrays_path.unlink()
    with pytest.raises(DataSourceError) as caught:
        load_arrays(tokenised)
    assert f"tokenised arrays {str(tokenised.arrays_path)!r} are missing" in str(caught.value)
    assert _rerun_advice(tokenised) in str(caught.value)


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.98])
def test_truncated_arrays_name_the_file_and_the_fix(tokenised: TokenisedData, keep: float) -> None:
    raw = tokenised.arrays_path.read_bytes()
    tokenised.arrays_path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(DataSourceError) as caught:
        load_arrays(tokenised)
    assert f"tokenised arrays {str(tokenised.arrays_path)!r} cannot be read" in str(caught.value)
    assert _rerun_advice(tokenised) in str(caught.value)


def test_flipped_byte_in_arrays_is_caught(tokenised: TokenisedData) -> None:
    raw = bytearray(tokenised.arrays_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    tokenised.arrays_path.write_bytes(bytes(raw))
    with pytest.raises(DataSourceError, match="tokenised arrays .* (cannot be read|do not match the digest)"):
        load_arrays(tokenised)


def test_arrays_replaced_by_other_valid_arrays_fail_the_digest(tokenised: TokenisedData) -> None:
    arrays = load_arrays(tokenised)
    arrays["y_train"] = 1 - arrays["y_train"]
    np.savez(tokenised.arrays_path, **arrays)
    with pytest.raises(DataSourceError, match="do not match the digest recorded when they were written"):
        load_arrays(tokenised)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda text: None, "is missing"),
        (lambda text: "\n".join(text.split("\n")[:-50]), "tokens but"),
        (lambda text: text.encode("utf-8")[:-3] + b"\xff\xfe", "cannot be read (UnicodeDecodeError"),
        (lambda text: "garbage\n" + text, "not the empty padding token"),
        (lambda text: text + "\n" + text.split("\n")[5], "repeats tokens"),
    ],
    ids=["deleted", "truncated", "not-utf8", "shifted", "duplicated"],
)
def test_damaged_vocabulary_names_the_file_and_the_fix(tokenised: TokenisedData, damage, problem: str) -> None:  # noqa: ANN001
    damaged = damage(tokenised.vocabulary_path.read_text(encoding="utf-8"))
    if damaged is None:
        tokenised.vocabulary_path.unlink()
    elif isinstance(damaged, bytes):
        tokenised.vocabulary_path.write_bytes(damaged)
    else:
        tokenised.vocabulary_path.write_text(damaged, encoding="utf-8")
    with pytest.raises(DataSourceError) as caught:
        load_vocabulary(tokenised.vocabulary_path)
    assert f"vocabulary {str(tokenised.vocabulary_path)!r}" in str(caught.value) and problem in str(caught.value)
    assert _rerun_advice(tokenised) in str(caught.value)


# --- the registered model behind `seqflow predict` --------------------------------------------------------


@pytest.fixture
def registered_champion(tmp_path: Path, tokenised_once: TokenisedData) -> tuple[TrackingSettings, Path]:
    """A real serving model (not trained: predictions do not matter here) registered as champion."""
    import keras

    from seqflow.models.architectures import ModelSpec, build_model, build_serving_model
    from seqflow.core.tracking import Tracker
    from seqflow.sentiment.serving import log_serving_model

    settings = TrackingSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment_name="damaged-artifacts",
        registered_model_name="damaged-artifacts-sentiment",
        artifact_location=(tmp_path / "mlartifacts").as_uri(),
    )
    vocabulary = load_vocabulary(tokenised_once.vocabulary_path)
    classifier = build_model("embedding_pool", ModelSpec(vocab_size=len(vocabulary), embedding_dim=8, dense_units=8))
    serving = build_serving_model(classifier, vocabulary, TOKENISATION.max_length, "post", "post")
    keras_path = tmp_path / "serving.keras"
    serving.save(keras_path)
    keras.backend.clear_session()

    tracker = Tracker(settings)
    run_id = tracker.start_run("damaged-artifacts", tags={})
    model_uri = log_serving_model(tracker, run_id, keras_path, ["fine", "bad"])
    [version] = tracker.register_versions([("embedding_pool", run_id, model_uri, {"test_accuracy": "0.5"})])
    tracker.set_champion(version.version, {"promotion_reason": "test"})
    tracker.end_run(run_id)
    model_dir = Path(urlparse(tracker.client.get_model_version_download_uri(settings.registered_model_name, version.version)).path)
    assert (model_dir / "MLmodel").is_file()
    return settings, model_dir


def _predict(settings: TrackingSettings, folder: Path, capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``seqflow --env-file … predict`` through the CLI's own entry point; (exit code, stdout, stderr)."""
    from seqflow.cli import main

    env_file = folder / "predict.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={settings.tracking_uri}\n"
        f"MLFLOW_EXPERIMENT_NAME={settings.experiment_name}\n"
        f"SEQFLOW_REGISTERED_MODEL_NAME={settings.registered_model_name}\n"
    )
    capfd.readouterr()
    code = main(["--env-file", str(env_file), "predict", "A fine film."])
    captured = capfd.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_predict_with_intact_champion_answers(registered_champion, tmp_path: Path, capfd) -> None:  # noqa: ANN001
    settings, _ = registered_champion
    code, stdout, stderr = _predict(settings, tmp_path, capfd)
    assert code == 0, stderr[-3000:]
    assert "A fine film." in stdout


def _delete_model_dir(model_dir: Path) -> None:
    shutil.rmtree(model_dir)


def _truncate_keras_file(model_dir: Path) -> None:
    [keras_file] = model_dir.rglob("*.keras")
    keras_file.write_bytes(keras_file.read_bytes()[:1000])


def _delete_keras_file(model_dir: Path) -> None:
    [keras_file] = model_dir.rglob("*.keras")
    keras_file.unlink()


def _garble_mlmodel(model_dir: Path) -> None:
    (model_dir / "MLmodel").write_text("flavors: [unclosed\n")


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage", [_delete_model_dir, _truncate_keras_file, _delete_keras_file, _garble_mlmodel],
    ids=["model-folder-deleted", "keras-truncated", "keras-deleted", "mlmodel-garbled"],
)
def test_predict_with_damaged_champion_is_one_clear_error(registered_champion, tmp_path: Path, damage, capfd) -> None:  # noqa: ANN001
    settings, model_dir = registered_champion
    damage(model_dir)
    code, _, stderr = _predict(settings, tmp_path, capfd)
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert f"cannot load model 'models:/{settings.registered_model_name}@champion'" in stderr
    # Where the files should be, and what to do about it.
    assert str(model_dir) in stderr
    assert "seqflow run" in stderr


@pytest.mark.slow
def test_predict_on_a_garbled_tracking_store_is_one_clear_error(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    settings = TrackingSettings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registered_model_name="x")
    (tmp_path / "mlflow.db").write_bytes(b"this is not a SQLite database" * 100)
    code, _, stderr = _predict(settings, tmp_path, capfd)
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert f"cannot use MLflow tracking store {settings.tracking_uri!r}: DatabaseError" in stderr


def test_tokenising_unchecked_labels_refuses_instead_of_casting(tmp_path: Path, short_reviews: pd.DataFrame) -> None:
    """Tokenisation runs after the raw contract; called without it, a 0.5 label must not silently become 0."""
    frame = short_reviews.assign(label=short_reviews["label"].astype(float))
    frame.loc[frame.index[:3], "label"] = 0.5
    source, data_config = SourceData(spec="half", train=frame), DataConfig(source="half")
    split_files = write_splits(split_source(source, data_config, 3), source, data_config, 3, tmp_path)
    with pytest.raises(DataSourceError, match=r"has \d label\(s\) other than 0 or 1, e\.g\. \[0\.5"):
        pad_and_tokenise(split_files, TOKENISATION, tmp_path)
