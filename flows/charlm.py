"""``seqflow charlm run``: text -> contract -> character ids -> one child run per architecture -> registry.
(``seqflow charlm rerun TASK`` is the one rerun flow of :mod:`seqflow.flows.rerun`.)"""

from __future__ import annotations

from seqflow.charlm.comparison import CharRunSummary
from seqflow.charlm.state import CharLMState
from seqflow.charlm.config import CharLMConfig
from seqflow.charlm.text import CharEncodedData, CharSplitFiles
from seqflow.core.contracts import ContractReport
from seqflow.core.config import ExecutionConfig
from seqflow.core.caching import cached
from seqflow.core.execution import evaluated_models, pipeline_flow, run_flow_on
from seqflow.core.settings import TrackingSettings
from seqflow.tasks.charlm import check_text, encode, evaluate, load_text, register, train
from seqflow.tasks.tracking import close_runs_of_failed_flow, finish_charlm_tracking, start_charlm_tracking


def prepare_char_data(config: CharLMConfig) -> tuple[CharSplitFiles, CharEncodedData, list[ContractReport]]:
    """The data steps every charlm flow starts with (load, the text contract, encode), each a cached task run."""
    artifacts_dir = config.artifacts_dir
    split_files = cached(load_text, artifacts_dir)(config.data, config.seed, artifacts_dir)
    contract_report = cached(check_text, artifacts_dir)(split_files, config.contracts)
    encoded = cached(encode, artifacts_dir)(split_files, artifacts_dir, config.data.min_char_count)
    return split_files, encoded, [contract_report]


@pipeline_flow("seqflow-charlm", close_runs_of_failed_flow)
def charlm_flow(config: CharLMConfig, settings: TrackingSettings) -> CharRunSummary:
    """Train, evaluate and register every configured character architecture; ``settings`` should be the
    charlm ones (:meth:`TrackingSettings.for_charlm`), so the sentiment registry is never touched.

    Every task but the tracking ones is cached like the sentiment flow's (see :mod:`seqflow.core.caching`): a
    repeated execution with the same inputs reuses the earlier results, MLflow runs and registered versions,
    under a new parent run."""
    artifacts_dir = config.artifacts_dir
    split_files, encoded, [contract_report] = prepare_char_data(config)
    parent_run_id = start_charlm_tracking(settings, config, split_files, encoded, [contract_report])
    train_model, evaluate_model = cached(train, artifacts_dir), cached(evaluate, artifacts_dir)
    submitted = []
    for architecture in config.training.architectures:
        trained = train_model.submit(settings, architecture, config, split_files, encoded, parent_run_id)
        submitted.append((trained, evaluate_model.submit(settings, trained, encoded, config)))
    evaluated = evaluated_models(submitted)
    registration = cached(register, artifacts_dir)(settings, evaluated, encoded, config, parent_run_id)
    state = CharLMState(
        config=config, split_files=split_files, encoded=encoded, contract_reports=[contract_report],
        trained=[trained.result() for trained, _ in submitted], evaluated=evaluated, registration=registration,
    )
    return finish_charlm_tracking(settings, parent_run_id, evaluated, registration, state)


def run_charlm_flow(
    config: CharLMConfig, settings: TrackingSettings, execution: ExecutionConfig = ExecutionConfig()
) -> CharRunSummary:
    """Run :func:`charlm_flow` on the task runner ``execution`` asks for: sequential by default, or every
    architecture trained and evaluated in parallel on Dask workers (``seqflow charlm run --runner dask``)."""
    return run_flow_on(charlm_flow, execution, config.artifacts_dir, settings.tracking_uri, config, settings)
