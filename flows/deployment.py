"""The flow that deployments and schedules run: plain parameters in, the sentiment flow as a subflow.

Deployments pass JSON parameters, so this entry point takes a profile name and ``section.field`` overrides
(the same as ``seqflow run --profile P --set K=V``) and reads ``mlflow.env`` on the machine that runs it.
"""

from __future__ import annotations

from prefect import flow

from seqflow.sentiment.profiles import resolve_pipeline_config
from seqflow.core.settings import load_settings
from seqflow.sentiment.comparison import RunSummary


@flow(name="seqflow-pipeline")
def scheduled_pipeline(
    profile: str | None = None,
    overrides: dict[str, str] | None = None,
    env_file: str | None = None,
) -> RunSummary:
    """Run ``seqflow run`` with a profile and overrides, against the tracking store of ``env_file``."""
    # Imported here, not at the top: `seqflow schedule` (Flow.serve) cloudpickles this flow into each run's
    # subprocess, and a module-level Flow object would travel by value with only part of its module's globals,
    # so Prefect could not resolve its parameter annotations (PipelineConfig) there. Imported, it is the real one.
    from seqflow.flows.sentiment import sentiment_flow

    settings = load_settings(env_file)
    config = resolve_pipeline_config(profile or settings.default_profile, dict(settings.config_overrides), overrides)
    return sentiment_flow(config, settings)
