"""Tracking and registry settings from ``mlflow.env``, overridden by real environment variables.

The file is read only when :func:`load_settings` is called (by the CLI or a flow), never at import time, and
it is never copied into ``os.environ``: callers pass the resulting :class:`TrackingSettings` explicitly.

Credentials never travel inside a URI. ``MLFLOW_TRACKING_URI=http://alice:pw@host:5000`` is split into the URI
``http://host:5000`` (what every message, log line, Prefect parameter and cache key shows) and the user name and
password, which are held as secrets, left out of every serialisation and handed to MLflow only where it
connects (see :meth:`TrackingSettings.connection_uri` and :meth:`TrackingSettings.credential_environment`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from seqflow.core.errors import ConfigError

DEFAULT_ENV_FILE = "mlflow.env"

# Config overrides that may come from mlflow.env / the environment, mapped to config keys.
ENV_CONFIG_KEYS: dict[str, str] = {
    "SEQFLOW_SEED": "seed",
    "SEQFLOW_ARTIFACTS_DIR": "artifacts_dir",
}

# Schemes whose credentials MLflow's HTTP client takes from MLFLOW_TRACKING_USERNAME/PASSWORD; any other
# scheme (postgresql+psycopg2://, mysql://, ...) is a database URL whose driver needs them inside the URL.
HTTP_SCHEMES = ("http", "https")
# First contact with a tracking server: MLflow's own default (7 retries, 120 s timeout, exponential backoff)
# takes about 4 minutes to say that a server is not there. Later calls keep MLflow's patience.
DEFAULT_CONNECT_RETRIES = 2
DEFAULT_CONNECT_TIMEOUT_S = 5.0
MAX_CONNECT_RETRIES = 10  # MLflow refuses more (_MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT)

# ``scheme://userinfo@``: what redact_credentials blanks out of any text.
# Greedy up to the last "@" before the host, so an unencoded "@" in a password is blanked out too.
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s'\"]+)@")
REDACTED = "***"


def redact_credentials(text: str) -> str:
    """``text`` with the user name and password of every URL in it replaced by ``***``."""
    return _USERINFO_IN_TEXT.sub(lambda match: f"{match['scheme']}{REDACTED}@", text)


def split_userinfo(uri: str) -> tuple[str, str | None, str | None]:
    """``(uri without user name and password, user name, password)``; names and passwords are percent-decoded."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username, has_password, password = userinfo.partition(":")
    bare = urlunsplit(parts._replace(netloc=hostport))
    return bare, unquote(username) or None, unquote(password) if has_password else None


class TrackingSettings(BaseModel):
    """Where MLflow keeps runs, models and artifacts for this project, and how to reach it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Never holds a user name or password (see the validator below): safe to show, log and hash.
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
    # Credentials of the tracking server or database. Excluded from every dump, so they never reach Prefect's
    # database (flow-run parameters), a cache key or a ledger file.
    tracking_username: str | None = Field(default=None, exclude=True, repr=False)
    tracking_password: SecretStr | None = Field(default=None, exclude=True, repr=False)
    # First request to a tracking server: retries and seconds per attempt before "cannot reach" (see
    # seqflow.core.tracking); raise them for a flaky network.
    connect_retries: int = Field(default=DEFAULT_CONNECT_RETRIES, ge=0, le=MAX_CONNECT_RETRIES)
    connect_timeout_s: float = Field(default=DEFAULT_CONNECT_TIMEOUT_S, gt=0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _move_credentials_out_of_the_uri(cls, data: Any) -> Any:
        """A URI with ``user:password@`` keeps only host and path; the credentials go to their own fields,
        unless those are given explicitly."""
        if not isinstance(data, dict) or not isinstance(data.get("tracking_uri"), str):
            return data
        bare, username, password = split_userinfo(data["tracking_uri"])
        if bare == data["tracking_uri"]:
            return data
        return {
            **data,
            "tracking_uri": bare,
            "tracking_username": data.get("tracking_username") or username,
            "tracking_password": data.get("tracking_password") or password,
        }

    def for_charlm(self) -> TrackingSettings:
        """These settings pointed at the character models' experiment and registered model, so the same
        :class:`~seqflow.core.tracking.Tracker` code tracks and registers them without touching the sentiment ones."""
        experiment_name = self.charlm_experiment_name or f"{self.experiment_name}-charlm"
        model_name = self.charlm_model_name or f"{self.registered_model_name}-charlm"
        # The charlm names stay set, so calling this again changes nothing.
        return self.model_copy(
            update={
                "experiment_name": experiment_name,
                "registered_model_name": model_name,
                "charlm_experiment_name": experiment_name,
                "charlm_model_name": model_name,
            }
        )

    @property
    def is_http(self) -> bool:
        return urlsplit(self.tracking_uri).scheme.lower() in HTTP_SCHEMES

    def connection_uri(self) -> str:
        """The URI to open the store with: for a database URL, with its credentials put back (its driver reads
        them only there); for a tracking server, the bare URI (MLflow's client sends the credentials from
        :meth:`credential_environment`). Hand it to MLflow only, never to a message or a log."""
        if self.is_http or self.tracking_username is None:
            return self.tracking_uri
        parts = urlsplit(self.tracking_uri)
        if not parts.hostname:
            # A file store or SQLite file (sqlite:////path) has no server to log in to: MLflow's
            # MLFLOW_TRACKING_USERNAME/PASSWORD, if set for another store, do not belong in its URL.
            return self.tracking_uri
        userinfo = quote(self.tracking_username, safe="")
        if self.tracking_password is not None:
            userinfo += ":" + quote(self.tracking_password.get_secret_value(), safe="")
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))

    def credential_environment(self) -> dict[str, str]:
        """MLflow's own MLFLOW_TRACKING_USERNAME/PASSWORD for a tracking server, which its HTTP client reads from
        the environment on every request; empty for other stores or without credentials."""
        if not self.is_http:
            return {}
        environment = {}
        if self.tracking_username is not None:
            environment["MLFLOW_TRACKING_USERNAME"] = self.tracking_username
        if self.tracking_password is not None:
            environment["MLFLOW_TRACKING_PASSWORD"] = self.tracking_password.get_secret_value()
        return environment


class _EnvVariables(BaseSettings):
    """The variables of ``mlflow.env``, by name, typed by pydantic-settings.

    Sources are the env file and the mapping :func:`load_settings` passes in (the environment, which wins), never
    ``os.environ`` directly, so that tests and flows say which environment they mean. Empty values count as unset.
    """

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, extra="ignore", env_file_encoding="utf-8"
    )

    MLFLOW_TRACKING_URI: str = TrackingSettings.model_fields["tracking_uri"].default
    MLFLOW_EXPERIMENT_NAME: str = TrackingSettings.model_fields["experiment_name"].default
    SEQFLOW_REGISTERED_MODEL_NAME: str = TrackingSettings.model_fields["registered_model_name"].default
    SEQFLOW_ARTIFACT_LOCATION: str | None = None
    SEQFLOW_PROFILE: str = TrackingSettings.model_fields["default_profile"].default
    SEQFLOW_CHARLM_EXPERIMENT_NAME: str | None = None
    SEQFLOW_CHARLM_MODEL_NAME: str | None = None
    MLFLOW_TRACKING_USERNAME: str | None = None
    MLFLOW_TRACKING_PASSWORD: SecretStr | None = None
    SEQFLOW_TRACKING_CONNECT_RETRIES: int = Field(DEFAULT_CONNECT_RETRIES, ge=0, le=MAX_CONNECT_RETRIES)
    SEQFLOW_TRACKING_CONNECT_TIMEOUT: float = Field(DEFAULT_CONNECT_TIMEOUT_S, gt=0, allow_inf_nan=False)
    SEQFLOW_SEED: str | None = None
    SEQFLOW_ARTIFACTS_DIR: str | None = None

    @classmethod
    def settings_customise_sources(  # noqa: ANN206 - pydantic-settings hook
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings  # noqa: ANN001
    ):
        return (init_settings, dotenv_settings)


def _check_utf8(path: Path) -> None:
    """A ConfigError naming the file, the byte and the fix if ``path`` cannot be read or is not UTF-8 text
    (python-dotenv would fail with a bare UnicodeDecodeError)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"env file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"env file {str(path)!r} is not valid UTF-8 (byte {exc.start}, line {line}: {exc.reason}); "
            "save it as UTF-8 text with KEY=VALUE lines (mlflow.env shows every key), or pass another --env-file"
        ) from None


# The variable each setting is read from. Explicit credential variables win over credentials written into the URI.
SETTINGS_VARIABLES = {
    "tracking_uri": "MLFLOW_TRACKING_URI",
    "experiment_name": "MLFLOW_EXPERIMENT_NAME",
    "registered_model_name": "SEQFLOW_REGISTERED_MODEL_NAME",
    "artifact_location": "SEQFLOW_ARTIFACT_LOCATION",
    "default_profile": "SEQFLOW_PROFILE",
    "charlm_experiment_name": "SEQFLOW_CHARLM_EXPERIMENT_NAME",
    "charlm_model_name": "SEQFLOW_CHARLM_MODEL_NAME",
    "tracking_username": "MLFLOW_TRACKING_USERNAME",
    "tracking_password": "MLFLOW_TRACKING_PASSWORD",
    "connect_retries": "SEQFLOW_TRACKING_CONNECT_RETRIES",
    "connect_timeout_s": "SEQFLOW_TRACKING_CONNECT_TIMEOUT",
}


def load_settings(env_file: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> TrackingSettings:
    """Settings from ``env_file`` (default ``./mlflow.env`` if present), with ``environ`` taking precedence.

    An explicitly named env file that does not exist is an error; the default one may be absent.
    """
    environ = os.environ if environ is None else environ
    if env_file is None:
        path: Path | None = Path(DEFAULT_ENV_FILE) if Path(DEFAULT_ENV_FILE).is_file() else None
    else:
        path = Path(env_file)
        if not path.is_file():
            raise ConfigError(f"env file {str(path)!r} does not exist")
    if path is not None:
        _check_utf8(path)
    from_environment = {name: environ[name] for name in _EnvVariables.model_fields if environ.get(name)}
    try:
        variables = _EnvVariables(_env_file=path, **from_environment)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        origin = "the environment" if name in from_environment else f"env file {str(path)!r}"
        raise ConfigError(f"{name} in {origin}: {error['msg']}") from None
    overrides = tuple(
        (config_key, found)
        for env_name, config_key in ENV_CONFIG_KEYS.items()
        if (found := getattr(variables, env_name)) is not None
    )
    return TrackingSettings(
        config_overrides=overrides, **{field: getattr(variables, name) for field, name in SETTINGS_VARIABLES.items()}
    )
