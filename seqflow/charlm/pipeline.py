"""The character-model pipeline, declared once for the core (see :mod:`seqflow.core.pipeline`): validation
perplexity chooses the champion, lower is better; the served model generates text from a prefix."""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from seqflow.charlm.comparison import CharComparisonRow
from seqflow.charlm.records import EvaluatedCharModel, TrainedCharModel
from seqflow.charlm.config import DEFAULT_CHARLM_PROFILE, CharLMConfig, resolve_charlm_config
from seqflow.core.errors import SeqflowError
from seqflow.core.pipeline import Paired, Pipeline, Pyfunc, Records, Score
from seqflow.charlm.card import CARD
from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import Tracker

logger = logging.getLogger(__name__)

# The tag (and metric) the champion is chosen by.
SCORE_TAG = "val_perplexity"
# Run metrics ``seqflow charlm champion`` shows (logged by evaluation and training).
SHOWN_METRICS = ("best_val_loss", "best_val_perplexity", "best_epoch", "epochs_run", "parameters",
                 # a mixture model's (training.ngram_interpolation): the network alone, the n-gram alone, λ
                 "network_val_perplexity", "ngram_val_perplexity", "mixture_weight")
# Perplexity is exp(loss); past this loss it would overflow and says nothing more.
MAX_LOSS = 50.0


def _kind():  # noqa: ANN202 - the pyfunc's PyfuncKind
    from seqflow.charlm.generate import CHAR_GENERATION

    return CHAR_GENERATION


def _signature():  # noqa: ANN202 - an MLflow ModelSignature
    import mlflow.types
    from mlflow.models import ModelSignature

    return ModelSignature(
        inputs=mlflow.types.Schema([
            mlflow.types.ColSpec("string", "prefix"), mlflow.types.ColSpec("long", "length"),
            mlflow.types.ColSpec("double", "temperature"), mlflow.types.ColSpec("long", "seed", required=False),
        ]),
        outputs=mlflow.types.Schema([mlflow.types.ColSpec("string", "text"), mlflow.types.ColSpec("string", "continuation")]),
    )


@dataclass(frozen=True)
class ValidationText:
    """The validation text a model is scored on: as character ids of ``vocabulary``, and how it is streamed."""

    vocabulary: list[str]
    ids: object  # numpy int32 array
    streams: int
    window: int


def validation_text_of(encoded, streams: int, window: int) -> ValidationText:  # noqa: ANN001 - CharEncodedData
    from seqflow.charlm.text import load_char_ids, load_char_vocabulary

    return ValidationText(load_char_vocabulary(encoded.vocabulary_path), load_char_ids(encoded, "validation"), streams, window)


def validation_text_of_version(tracker: Tracker, version) -> ValidationText:  # noqa: ANN001 - mlflow ModelVersion
    """The validation text ``version`` was scored on, found where its run encoded it and checked against the
    ids digest the run recorded."""
    import numpy as np

    from seqflow.charlm.text import CHAR_SPLITS, char_ids_digest, load_char_vocabulary

    tags = version.tags or {}
    params, _ = tracker.run_data(version.run_id)
    if "artifacts_dir" not in params or "dataset_digest" not in tags:
        raise SeqflowError(f"version {version.version} does not record where its validation text is (no "
                           "artifacts_dir param or dataset_digest tag)")
    encoded_dir = Path(params["artifacts_dir"]) / "char_encoded" / tags["dataset_digest"][:16]
    paths = {split: encoded_dir / f"{split}_ids.npy" for split in CHAR_SPLITS}
    if not all(path.is_file() for path in paths.values()) or not (encoded_dir / "vocabulary.json").is_file():
        raise SeqflowError(
            f"the champion was measured on other data than version {version.version}, and v{version.version}'s "
            f"validation text {str(encoded_dir)!r} is not on this machine to score both on the same data; run this "
            "where the pipeline ran, or use --force --reason TEXT"
        )
    ids = {split: np.load(path) for split, path in paths.items()}
    recorded = tracker.run_tags(version.run_id).get("ids_digest")
    if recorded and char_ids_digest(ids) != recorded:
        raise SeqflowError(f"character ids in {str(encoded_dir)!r} no longer match version {version.version}'s ids_digest")
    return ValidationText(
        load_char_vocabulary(encoded_dir / "vocabulary.json"), ids["validation"],
        int(params.get("training.validation_streams", 16)), int(params.get("training.validation_window", 500)),
    )


def _block_losses(tracker: Tracker, version, text: ValidationText):  # noqa: ANN001, ANN202
    """(loss sums, character counts) per validation block of ``version`` on ``text``, scored now with its own
    step model and vocabulary (characters it never saw read as its unknown marker)."""
    import keras
    import numpy as np

    from seqflow.charlm.corpus import champion_vocabulary_problem
    from seqflow.charlm.text import UNKNOWN_ID, encode, load_char_vocabulary
    from seqflow.charlm.mixture import MIXTURE_FILE, NgramMixture, mixture_block_log_probabilities
    from seqflow.charlm.train import block_sums
    from seqflow.core.registry import IncomparableChampion

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = tracker.download_model_artifacts(
            f"models:/{tracker.settings.registered_model_name}/{version.version}", Path(scratch)
        )
        # The pyfunc keeps its artifact files under artifacts/: the step model (.keras) and the vocabulary (.json).
        step_model = keras.saving.load_model(next((model_dir / "artifacts").rglob("*.keras")), compile=False)
        vocabulary = load_char_vocabulary(next((model_dir / "artifacts").rglob("*.json")))
        # A mixture model (training.ngram_interpolation) is scored as the mixture it generates from.
        mixture_file = next((model_dir / "artifacts").rglob(MIXTURE_FILE), None)
        mixture = NgramMixture.load(mixture_file) if mixture_file is not None else None
    validation = "".join(text.vocabulary[i] for i in text.ids)
    # A champion of another alphabet is not scored on this text: its perplexity would measure the mismatch.
    own_unknown_share = float(np.mean(np.asarray(text.ids) == UNKNOWN_ID)) if len(text.ids) else 0.0
    if problem := champion_vocabulary_problem(vocabulary, validation, own_unknown_share):
        raise IncomparableChampion(
            f"{problem}; give this corpus its own registered model (seqflow charlm run --model-name NAME, or leave "
            "the name to be derived from --source)"
        )
    log_probabilities = mixture_block_log_probabilities(step_model, mixture, encode(validation, vocabulary), text.streams, text.window)
    return block_sums(-log_probabilities, text.window)


def perplexity_on(tracker: Tracker, champion, text: ValidationText) -> float:  # noqa: ANN001
    """The champion's validation perplexity on ``text``, scored now with its own step model and vocabulary."""
    sums, counts = _block_losses(tracker, champion, text)
    return math.exp(min(float(sums.sum()) / float(counts.sum()), MAX_LOSS))


def window_losses_on(tracker: Tracker, version, text: ValidationText):  # noqa: ANN001, ANN202 - RowOutcomes
    """Per validation block (one window of one stream), ``version``'s loss sum and character count on ``text``:
    the rows of the paired bootstrap of a promotion."""
    from seqflow.core.paired import RowOutcomes

    return RowOutcomes(*_block_losses(tracker, version, text))


def _charlm_settings(settings: TrackingSettings) -> TrackingSettings:
    return settings.for_charlm()


def _resolve_config(profile: str | None, settings: TrackingSettings, overrides: dict) -> CharLMConfig:
    return resolve_charlm_config(profile or DEFAULT_CHARLM_PROFILE, dict(settings.config_overrides), overrides)


CHARLM = Pipeline(
    name="charlm",
    command="seqflow charlm",
    config_class=CharLMConfig,
    score=Score(tag=SCORE_TAG, label="validation perplexity", higher_is_better=False,
                bound_setting="max_val_perplexity", data="validation text"),
    execution_role="charlm-pipeline", architecture_role="charlm-architecture",
    tracking_settings=_charlm_settings,
    resolve_config=_resolve_config,
    records=Records(trained=TrainedCharModel, evaluated=EvaluatedCharModel, comparison_row=CharComparisonRow),
    pyfunc=Pyfunc(
        kind=_kind,
        signature=_signature,
        request_example='{"dataframe_records": [{"prefix": "ROMEO:", "length": 200, "temperature": 0.8}]}',
    ),
    shown_metrics=SHOWN_METRICS, shown_metrics_label="validation metrics",
    scoring_data_of=validation_text_of_version,
    score_champion=perplexity_on,
    card=CARD,
    paired=Paired(metric="validation loss (nats/char)", outcomes=window_losses_on),
)
