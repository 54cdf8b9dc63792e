"""Loading a model runs none of its stored code, checks its files, and still loads what earlier releases registered.

- ``old_release_store.tar.gz`` is a SQLite store + artifact folder written by the previous release (4a561d5) with
  its own code (see ``fixtures/make_old_release_store.py``): a review sentiment and a character model in MLflow's
  pickled form, with the answers that release gave. The new code must give the same answers, warn that they use
  the pickled form, and never unpickle ``python_model.pkl`` (replaced here by a pickle that leaves a marker file).
- Versions the new code registers are models from code with their file digests in the tracking database; a file
  swapped in the artifact store afterwards is refused, naming the file, before anything reads it.
- A model of the wrong kind given to ``seqflow predict`` / ``generate`` is one line saying what it is.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import sqlite3
import tarfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from seqflow.charlm.generate import CHAR_GENERATION
from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import Tracker, TrackingError
from seqflow.core.trusted_models import MODEL_DIGESTS_TAG, PICKLED_MODEL_FILE
from seqflow.sentiment.serving import REVIEW_SENTIMENT
from tests.conftest import new_empty_store, register_tiny_sentiment_model

FIXTURE = Path(__file__).parent / "fixtures" / "old_release_store.tar.gz"


@pytest.fixture
def old_store(tmp_path: Path) -> tuple[TrackingSettings, dict]:
    """The previous release's store, unpacked under tmp_path (its absolute paths moved there)."""
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    root = tmp_path / "store"
    expected = json.loads((root / "expected.json").read_text(encoding="utf-8"))
    _relocate(root / "mlflow.db", expected["store_root"], str(root))
    settings = TrackingSettings(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", experiment_name="old-release",
        registered_model_name=expected["sentiment"]["model"], artifact_location=(root / "mlartifacts").as_uri(),
        charlm_experiment_name="old-release-charlm", charlm_model_name=expected["charlm"]["model"],
    )
    return settings, expected


def _relocate(database: Path, old_root: str, new_root: str) -> None:
    """Rewrite every text value of the SQLite store that names ``old_root`` (artifact locations and URIs)."""
    with sqlite3.connect(database) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in connection.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], (column[2] or "").upper()
                if "CHAR" in kind or "TEXT" in kind:
                    connection.execute(
                        f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) WHERE "{name}" LIKE ?',
                        (old_root, new_root, f"%{old_root}%"),
                    )


def _version_dir(tracker: Tracker, name: str, version: str) -> Path:
    return Path(urlparse(tracker.client.get_model_version_download_uri(name, version)).path)


class _LeavesMarker:
    """Unpickling this creates ``path``: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.path), "w"))


def _booby_trap_pickle(model_dir: Path, marker: Path) -> None:
    (model_dir / PICKLED_MODEL_FILE).write_bytes(pickle.dumps(_LeavesMarker(marker)))


@pytest.mark.slow
def test_old_release_sentiment_version_scores_as_before_without_unpickling(old_store, tmp_path, caplog) -> None:  # noqa: ANN001
    settings, expected = old_store
    tracker = Tracker(settings)
    marker = tmp_path / "unpickled"
    _booby_trap_pickle(_version_dir(tracker, settings.registered_model_name, expected["sentiment"]["version"]), marker)
    with caplog.at_level(logging.WARNING):
        model = tracker.load_pyfunc(f"models:/{settings.registered_model_name}@champion", REVIEW_SENTIMENT)
    scores = model.predict(pd.DataFrame({"text": expected["sentiment"]["reviews"]}))
    np.testing.assert_allclose(scores["probability"], expected["sentiment"]["probability"], rtol=1e-5)
    assert scores["label"].tolist() == expected["sentiment"]["label"]
    assert "pickled form" in caplog.text and "without unpickling" in caplog.text
    assert not marker.exists()


@pytest.mark.slow
def test_old_release_char_version_generates_as_before(old_store, tmp_path, caplog) -> None:  # noqa: ANN001
    settings, expected = old_store
    tracker = Tracker(settings.for_charlm())
    marker = tmp_path / "unpickled"
    _booby_trap_pickle(_version_dir(tracker, expected["charlm"]["model"], expected["charlm"]["version"]), marker)
    with caplog.at_level(logging.WARNING):
        model = tracker.load_pyfunc(f"models:/{expected['charlm']['model']}/{expected['charlm']['version']}", CHAR_GENERATION)
    generated = model.predict(pd.DataFrame(expected["charlm"]["row"]))
    assert generated["text"][0] == expected["charlm"]["text"]
    assert "pickled form" in caplog.text
    assert not marker.exists()


def _cli(settings: TrackingSettings, folder: Path, capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``seqflow --env-file … ARGS`` through the CLI's own entry point; (exit code, stdout, stderr)."""
    from seqflow.cli import main

    env_file = folder / "cli.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={settings.tracking_uri}\nMLFLOW_EXPERIMENT_NAME={settings.experiment_name}\n"
        f"SEQFLOW_REGISTERED_MODEL_NAME={settings.registered_model_name}\n"
    )
    capfd.readouterr()
    code = main(["--env-file", str(env_file), *args])
    captured = capfd.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_predict_and_generate_from_the_cli_on_the_old_store(old_store, tmp_path, capfd) -> None:  # noqa: ANN001
    settings, expected = old_store
    code, stdout, stderr = _cli(settings, tmp_path, capfd, "predict", "--json", *expected["sentiment"]["reviews"])
    assert code == 0, stderr[-3000:]
    answers = json.loads(stdout)
    np.testing.assert_allclose([a["probability"] for a in answers], expected["sentiment"]["probability"], rtol=1e-5)

    row = expected["charlm"]["row"]
    code, stdout, stderr = _cli(
        settings, tmp_path, capfd, "generate", "--model-uri", f"models:/{expected['charlm']['model']}/1",
        "--prefix", row["prefix"][0], "--length", str(row["length"][0]), "--temperature", str(row["temperature"][0]),
        "--seed", str(row["seed"][0]),
    )
    assert code == 0, stderr[-3000:]
    assert stdout.rstrip("\n") == expected["charlm"]["text"]


@pytest.mark.slow
def test_predict_of_a_character_model_and_generate_of_a_sentiment_model_say_what_they_are(old_store, tmp_path, capfd) -> None:  # noqa: ANN001
    settings, expected = old_store
    code, _, stderr = _cli(settings, tmp_path, capfd, "predict", "--model-uri", f"models:/{expected['charlm']['model']}/1", "good")
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("seqflow: error:")]
    assert "is a character generation model" in line and "`seqflow predict` needs a review sentiment model" in line

    code, _, stderr = _cli(settings, tmp_path, capfd, "generate", "--model-uri", f"models:/{settings.registered_model_name}/1")
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("seqflow: error:")]
    assert "is a review sentiment model" in line and "`seqflow generate` needs a character generation model" in line


@pytest.mark.slow
def test_predict_of_a_foreign_pyfunc_refuses_without_unpickling_it(tmp_path, capfd) -> None:  # noqa: ANN001
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    class Foreign(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
            return model_input

    folder = tmp_path / "foreign"
    mlflow.pyfunc.save_model(
        str(folder), python_model=Foreign(), signature=ModelSignature(inputs=Schema([ColSpec("double", "x")])),
        pip_requirements=[],
    )
    marker = tmp_path / "unpickled"
    _booby_trap_pickle(folder, marker)
    new_empty_store(tmp_path / "mlflow.db")
    settings = TrackingSettings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registered_model_name="m")
    code, _, stderr = _cli(settings, tmp_path, capfd, "predict", "--model-uri", str(folder), "good")
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "is not a seqflow model (python_function; input columns: x)" in stderr
    assert "`seqflow predict` needs a review sentiment model" in stderr
    assert not marker.exists()


# --- versions registered by the new code -----------------------------------------------------------------


@pytest.fixture
def new_version(tmp_path: Path) -> tuple[Tracker, str, Path]:
    """A tiny (untrained) sentiment model logged and registered by the new code: (tracker, models:/ URI, files)."""
    settings, tracker, model_uri, version = register_tiny_sentiment_model(tmp_path, "trusted-sentiment")
    return tracker, model_uri, _version_dir(tracker, settings.registered_model_name, version)


@pytest.mark.slow
def test_new_versions_are_models_from_code_with_digests_in_the_tracking_store(new_version, caplog) -> None:  # noqa: ANN001
    tracker, model_uri, model_dir = new_version
    assert not (model_dir / PICKLED_MODEL_FILE).exists()
    mlmodel = (model_dir / "MLmodel").read_text(encoding="utf-8")
    assert "model_code_path" in mlmodel and "seqflow_pyfunc: review-sentiment" in mlmodel
    version = tracker.model_version(model_uri.rsplit("/", 1)[1])
    recorded = json.loads(version.tags[MODEL_DIGESTS_TAG])
    assert {"MLmodel", "serving_pyfunc.py", "artifacts/serving_model.keras"} <= set(recorded)
    with caplog.at_level(logging.WARNING):
        scores = tracker.load_pyfunc(model_uri, REVIEW_SENTIMENT).predict(pd.DataFrame({"text": ["good film", "bad"]}))
    assert scores["probability"].between(0, 1).all()
    assert "digests" not in caplog.text and "pickled" not in caplog.text


def _replace_keras_file(model_dir: Path, tmp_path: Path) -> str:
    keras_file = model_dir / "artifacts" / "serving_model.keras"
    raw = bytearray(keras_file.read_bytes())
    raw[-100] ^= 0xFF
    keras_file.write_bytes(bytes(raw))
    return "its file 'artifacts/serving_model.keras' does not match the SHA-256 recorded when version 1"


def _replace_code_file(model_dir: Path, tmp_path: Path) -> str:
    (model_dir / "serving_pyfunc.py").write_text(f"open({str(tmp_path / 'unpickled')!r}, 'w')\n")
    return "its file 'serving_pyfunc.py' does not match the SHA-256 recorded"


def _add_a_pickle(model_dir: Path, tmp_path: Path) -> str:
    _booby_trap_pickle(model_dir, tmp_path / "unpickled")
    mlmodel = model_dir / "MLmodel"
    mlmodel.write_text(mlmodel.read_text(encoding="utf-8").replace("python_function:", "python_function:\n    python_model: python_model.pkl"))
    return "its file 'MLmodel' does not match the SHA-256 recorded"


def _delete_keras_file(model_dir: Path, tmp_path: Path) -> str:
    (model_dir / "artifacts" / "serving_model.keras").unlink()
    return "its file 'artifacts/serving_model.keras' is missing"


@pytest.mark.slow
@pytest.mark.parametrize(
    "swap", [_replace_keras_file, _replace_code_file, _add_a_pickle, _delete_keras_file],
    ids=["keras-file-changed", "code-file-replaced", "pickle-slipped-in", "keras-file-deleted"],
)
def test_a_file_swapped_after_registration_is_refused_by_name(new_version, tmp_path, swap) -> None:  # noqa: ANN001
    tracker, model_uri, model_dir = new_version
    expected = swap(model_dir, tmp_path)
    for load in (
        lambda: tracker.load_pyfunc(model_uri, REVIEW_SENTIMENT),
        lambda: tracker.prepare_served_model(model_uri, REVIEW_SENTIMENT, tmp_path / "serve"),
        lambda: tracker.download_serving_model(model_uri, tmp_path / "warm-start"),
    ):
        with pytest.raises(TrackingError) as refused:
            load()
        assert expected in str(refused.value)
        assert "\n" not in str(refused.value)
    assert not (tmp_path / "unpickled").exists()


@pytest.mark.slow
def test_the_served_copy_of_an_old_release_version_needs_no_pickle(old_store, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """What ``seqflow serve`` hands ``mlflow models serve``: loads with pickles refused, answers as before."""
    import mlflow.pyfunc

    settings, expected = old_store
    served = Tracker(settings).prepare_served_model(f"models:/{settings.registered_model_name}@champion", REVIEW_SENTIMENT, tmp_path / "serve")
    assert not (served / PICKLED_MODEL_FILE).exists()
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    scores = mlflow.pyfunc.load_model(str(served)).predict(pd.DataFrame({"text": expected["sentiment"]["reviews"]}))
    np.testing.assert_allclose(scores["probability"], expected["sentiment"]["probability"], rtol=1e-5)
    shutil.rmtree(served)


@pytest.mark.slow
def test_a_hand_edited_digest_record_is_refused_not_skipped(new_version, tmp_path) -> None:  # noqa: ANN001
    """The record is the only anchor: an unreadable one must not turn the check off (as a missing one would)."""
    tracker, model_uri, _ = new_version
    name, version = model_uri[len("models:/"):].split("/")
    tracker.client.set_model_version_tag(name, version, MODEL_DIGESTS_TAG, "{not json")
    with pytest.raises(TrackingError, match=f"the '{MODEL_DIGESTS_TAG}' tag of version 1 of 'trusted-sentiment' is not a JSON"):
        tracker.load_pyfunc(model_uri, REVIEW_SENTIMENT)
