"""Opening a tracking store: credentials handed to MLflow, and a first request that fails within seconds.

Used by :class:`seqflow.core.tracking.Tracker`; kept apart because it is about reaching the store, not about
runs and models.
"""

from __future__ import annotations

import os
import re

from seqflow.core.errors import SeqflowError
from seqflow.core.settings import TrackingSettings, redact_credentials

# The first request asks for the experiment by name, as the Tracker's first call does (any answer but 401/403
# means the server is there).
_PROBE_ENDPOINT = "/api/2.0/mlflow/experiments/get-by-name"
# Seconds before the second retry, doubling after it (urllib3 retries the first one at once).
_PROBE_BACKOFF_FACTOR = 1
# Why a request failed, inside the long message MLflow and urllib3 build ("... [Errno 111] Connection refused')").
_NETWORK_REASON = re.compile(r"\[Errno -?\d+\] [^'\")]+|Read timed out|timed out|Name or service not known")

# Credentials of the stores this process opened, by their credential-free URI: a Prefect hook gets the flow's
# settings back from Prefect's database, which never holds them.
_opened_with: dict[str, TrackingSettings] = {}


class StoreUnreachable(SeqflowError):
    """The tracking server did not answer its first request, or refused the credentials."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, with the credentials of any URL in it blanked out."""
    text = str(exc).strip()
    return redact_credentials(text.splitlines()[0]) if text else ""


def prepare_connection(settings: TrackingSettings) -> str:
    """Make ``settings``' store ready to open and return the URI to open it with.

    For a tracking server: MLflow's HTTP client reads MLFLOW_TRACKING_USERNAME/PASSWORD from the environment on
    every request (also in threads, Dask workers and the model server started from this process), so the
    credentials go there, never into a URI MLflow could print; then :func:`check_server_answers`.
    """
    os.environ.update(settings.credential_environment())
    if settings.tracking_username is not None:
        _opened_with[settings.tracking_uri] = settings
    if settings.is_http:
        check_server_answers(settings)
    return settings.connection_uri()


def with_known_credentials(settings: TrackingSettings) -> TrackingSettings:
    """``settings``, with the credentials of a store this process already opened if it carries none."""
    known = _opened_with.get(settings.tracking_uri)
    if settings.tracking_username is not None or known is None:
        return settings
    return settings.model_copy(
        update={"tracking_username": known.tracking_username, "tracking_password": known.tracking_password}
    )


def check_server_answers(settings: TrackingSettings) -> None:
    """Fail within seconds when a tracking server does not answer or refuses the credentials.

    Every MLflow request retries 7 times with a growing backoff and a 120 s timeout (right for a server that is
    there but busy: it rides out rate limits), so a server that is not there at all took about 4 minutes to
    report. This first request is bounded by the settings' ``connect_retries`` and ``connect_timeout_s``
    instead; once the server answered, the calls that follow keep MLflow's patience. Only establishing the
    connection is bounded this tightly: a server that accepted it may take its time to answer (a freshly started
    one can take over 10 s for its first request on a busy machine), up to MLflow's own request timeout.
    """
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT
    from mlflow.tracking._tracking_service.utils import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(
            get_default_host_creds(settings.tracking_uri), _PROBE_ENDPOINT, "GET",
            max_retries=settings.connect_retries, backoff_factor=_PROBE_BACKOFF_FACTOR, backoff_jitter=0,
            timeout=(settings.connect_timeout_s, MLFLOW_HTTP_REQUEST_TIMEOUT.get()), raise_on_status=False,
            params={"experiment_name": settings.experiment_name},
        )
    except Exception as exc:  # noqa: BLE001 - whatever failed, the server did not answer
        found = _NETWORK_REASON.search(str(exc))
        reason = found.group(0).strip() if found else first_line(exc)[:200]
        raise StoreUnreachable(
            f"cannot reach MLflow tracking server {settings.tracking_uri!r} ({reason}; {settings.connect_retries + 1} "
            f"attempt(s), {settings.connect_timeout_s:g} s each to connect): check MLFLOW_TRACKING_URI and that the "
            "server runs, or raise SEQFLOW_TRACKING_CONNECT_RETRIES / SEQFLOW_TRACKING_CONNECT_TIMEOUT for a slow network"
        ) from None
    if response.status_code in (401, 403):
        who = f"user {settings.tracking_username!r}" if settings.tracking_username else "no credentials"
        raise StoreUnreachable(
            f"MLflow tracking server {settings.tracking_uri!r} refused the request with {who} (HTTP "
            f"{response.status_code}): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in mlflow.env or "
            "the environment"
        )
