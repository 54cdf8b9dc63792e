"""The sentiment pipeline's rerun table: what ``seqflow rerun TASK`` can run again, by task-function name (see
:mod:`seqflow.tasks.sentiment`), what each reads from the earlier execution and what it replaces.

``validate`` is kept from earlier releases as a name for both contract checks (``check_raw`` and
``check_tokenised``); the other earlier names were already the task names.
"""

from __future__ import annotations

from typing import Any, Mapping

from seqflow.sentiment.config import ALL_ARCHITECTURES, with_overrides
from seqflow.core.rerun_table import SENTIMENT, RerunStep, RerunTable, imported_when_called, output_gone, trained_outputs_gone
from seqflow.core.rerun_table import contract_step, split_contract_step, evaluate_step, load_step, register_step, train_step


SENTIMENT_RERUNS = RerunTable(
    steps={
        "download": load_step("splits"),
        "check_raw": split_contract_step(),
        "tokenise": RerunStep(
            produces="tokenised",
            arguments=lambda r: {
                "split_files": r.earlier.split_files, "tokenisation": r.config.tokenisation, "artifacts_dir": r.config.artifacts_dir,
            },
            describe=lambda out, earlier: [f"tokenised arrays {out.arrays_path}"],
            needs=("splits",),
        ),
        "check_tokenised": contract_step(
            lambda r: {"tokenised": r.earlier.tokenised, "tokenisation": r.config.tokenisation, "contracts": r.config.contracts},
            ("arrays",),
        ),
        "train": train_step(
            lambda r: {"tokenised": r.earlier.tokenised, "contract_reports": r.earlier.contract_reports}, ("splits", "arrays")
        ),
        "evaluate": evaluate_step(
            lambda r: {
                "tokenised": r.earlier.tokenised, "batch_size": r.config.training.batch_size, "behaviour": r.config.behaviour,
            },
            lambda out, earlier: [f"new child run {out.run_id}, test accuracy {out.test_metrics['accuracy']:.4f}"],
            ("arrays", "model files"),
        ),
        "register": register_step(
            lambda r: {"split_files": r.earlier.split_files, "promotion": r.config.promotion}, ("splits", "evaluated runs")
        ),
    },
    kind=SENTIMENT,
    read_state=imported_when_called("seqflow.sentiment.state:state_from_json"),
    aliases={"validate": ("check_raw", "check_tokenised")},
    architectures=ALL_ARCHITECTURES, with_overrides=with_overrides,
    upstream={
        "splits": output_gone("seqflow.sentiment.cache_checks:split_files_problem", "split_files"),
        "arrays": output_gone("seqflow.sentiment.cache_checks:tokenised_problem", "tokenised"),
        **trained_outputs_gone("classifier_path"),
    },
)


def plan_rerun(tracker: Any, task: str, from_run: str | None, architectures: list[str] | None, overrides: Mapping[str, Any]):  # noqa: ANN201
    """The :class:`~seqflow.core.rerun.RerunPlan` of ``seqflow rerun TASK`` (see :func:`seqflow.core.rerun.plan_from_table`)."""
    from seqflow.core.rerun import plan_from_table

    return plan_from_table(tracker, SENTIMENT_RERUNS, task, from_run, architectures, overrides)
