"""Tracking and registry settings from ``mlflow.env``, overridden by real environment variables.

The file is read only when :func:`load_settings` is called (by the CLI or a flow), never at import time, and
it is never copied into ``os.environ``: callers pass the resulting :class:`TrackingSettings` explicitly.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from dotenv import dotenv_values

from seqflow.core.errors import ConfigError

DEFAULT_ENV_FILE = "mlflow.env"

# Config overrides that may come from mlflow.env / the environment, mapped to config keys.
ENV_CONFIG_KEYS: dict[str, str] = {
    "SEQFLOW_SEED": "seed",
    "SEQFLOW_ARTIFACTS_DIR": "artifacts_dir",
}


@dataclass(frozen=True)
class TrackingSettings:
    """Where MLflow keeps runs, models and artifacts for this project."""

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment_name: str = "seqflow-imdb"
    registered_model_name: str = "seqflow-imdb-sentiment"
    # Artifact root for a newly created experiment; None lets the tracking server decide.
    artifact_location: str | None = None
    # Which profile runs when the CLI gets no --profile.
    default_profile: str = "quick"
    # Config overrides (``{"seed": "7"}``) taken from SEQFLOW_* variables.
    config_overrides: tuple[tuple[str, str], ...] = ()
    # Experiment and registered model of ``seqflow charlm run``; None: the names above + "-charlm".
    charlm_experiment_name: str | None = None
    charlm_model_name: str | None = None

    def for_charlm(self) -> TrackingSettings:
        """These settings pointed at the character models' experiment and registered model, so the same
        :class:`~seqflow.core.tracking.Tracker` code tracks and registers them without touching the sentiment ones."""
        experiment_name = self.charlm_experiment_name or f"{self.experiment_name}-charlm"
        model_name = self.charlm_model_name or f"{self.registered_model_name}-charlm"
        # The charlm names stay set, so calling this again changes nothing.
        return dataclasses.replace(
            self,
            experiment_name=experiment_name,
            registered_model_name=model_name,
            charlm_experiment_name=experiment_name,
            charlm_model_name=model_name,
        )


def load_settings(env_file: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> TrackingSettings:
    """Settings from ``env_file`` (default ``./mlflow.env`` if present), with ``environ`` taking precedence.

    An explicitly named env file that does not exist is an error; the default one may be absent.
    """
    environ = os.environ if environ is None else environ
    if env_file is None:
        path = Path(DEFAULT_ENV_FILE)
        file_values = dotenv_values(path) if path.is_file() else {}
    else:
        path = Path(env_file)
        if not path.is_file():
            raise ConfigError(f"env file {str(path)!r} does not exist")
        file_values = dotenv_values(path)

    def value(name: str, default: str | None) -> str | None:
        if environ.get(name):
            return environ[name]
        if file_values.get(name):
            return file_values[name]
        return default

    defaults = TrackingSettings()
    artifact_location = value("SEQFLOW_ARTIFACT_LOCATION", None)
    overrides = tuple(
        (config_key, found)
        for env_name, config_key in ENV_CONFIG_KEYS.items()
        if (found := value(env_name, None)) is not None
    )
    return TrackingSettings(
        tracking_uri=value("MLFLOW_TRACKING_URI", defaults.tracking_uri) or defaults.tracking_uri,
        experiment_name=value("MLFLOW_EXPERIMENT_NAME", defaults.experiment_name) or defaults.experiment_name,
        registered_model_name=value("SEQFLOW_REGISTERED_MODEL_NAME", defaults.registered_model_name)
        or defaults.registered_model_name,
        artifact_location=artifact_location,
        default_profile=value("SEQFLOW_PROFILE", defaults.default_profile) or defaults.default_profile,
        config_overrides=overrides,
        charlm_experiment_name=value("SEQFLOW_CHARLM_EXPERIMENT_NAME", None),
        charlm_model_name=value("SEQFLOW_CHARLM_MODEL_NAME", None),
    )
