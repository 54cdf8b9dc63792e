"""System tests (PostgreSQL, Dask, the browser, schedules, deployments, shared stores) run the same tiny pipelines
as the flow tests: the same fixtures."""

from tests.flows.conftest import shared_config, shared_folder, shared_settings, tiny_config, tiny_overrides, tracking_settings  # noqa: F401
