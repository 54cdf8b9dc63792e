"""The pipelines' rerun tables: every rerun name is a task of that name, earlier names still resolve, and a
wrong name or --arch is refused before anything is read. No Prefect server or MLflow store needed."""

from __future__ import annotations

import pytest

from seqflow.charlm.rerun import CHARLM_RERUNS
from seqflow.core.errors import ConfigError
from seqflow.core.rerun import plan_from_table
from seqflow.sentiment.rerun import SENTIMENT_RERUNS


class _Anything:
    """Stands for any part of an execution's state or config: every attribute is another one."""

    def __getattr__(self, name: str) -> _Anything:
        return _Anything()


def test_every_rerun_name_is_the_name_of_its_task_and_its_function():
    import inspect

    from seqflow.core.rerun_table import RerunInputs
    from seqflow.flows.rerun import PIPELINES

    anything = RerunInputs(_Anything(), _Anything(), _Anything(), "parent", "lstm", _Anything())

    assert {table.kind for table, _ in PIPELINES} == {SENTIMENT_RERUNS.kind, CHARLM_RERUNS.kind}
    for table, tasks in PIPELINES:
        for name, step in table.steps.items():
            task = getattr(tasks, name)
            assert task.name == task.fn.__name__ == name
            # The arguments a step is called with are exactly its task's parameters.
            assert set(step.arguments(anything)) == set(inspect.signature(task.fn).parameters), name
            assert all(need in table.upstream for need in step.needs), name


def test_earlier_cli_names_resolve_to_the_tasks_they_ran():
    assert SENTIMENT_RERUNS.resolve("validate") == ("check_raw", "check_tokenised")
    assert SENTIMENT_RERUNS.resolve("tokenise") == ("tokenise",)
    assert CHARLM_RERUNS.resolve("load") == ("load_text",)
    assert CHARLM_RERUNS.resolve("validate") == ("check_text",)
    # Every earlier name is still accepted.
    assert {"download", "validate", "tokenise", "train", "evaluate", "register"} <= set(SENTIMENT_RERUNS.names)
    assert {"load", "validate", "encode", "train", "evaluate", "register"} <= set(CHARLM_RERUNS.names)


def test_a_wrong_task_or_arch_is_refused_before_anything_is_read():
    # No tracker: these are refused before the earlier execution is looked up.
    with pytest.raises(ConfigError, match="cannot rerun 'fit'; tasks: download, check_raw, tokenise, check_tokenised, "):
        plan_from_table(None, SENTIMENT_RERUNS, "fit", None, None, {})
    with pytest.raises(ConfigError, match="--arch applies to train and evaluate, not register"):
        plan_from_table(None, SENTIMENT_RERUNS, "register", None, ["lstm"], {})
    with pytest.raises(ConfigError, match="--arch applies to train and evaluate, not load"):
        plan_from_table(None, CHARLM_RERUNS, "load", None, ["char_gru"], {})


def test_cli_lists_the_task_names_and_the_earlier_ones(capsys):
    from seqflow.cli import main

    with pytest.raises(SystemExit):
        main(["charlm", "rerun", "fit"])
    error = capsys.readouterr().err
    assert "load_text" in error and "'load'" in error and "check_text" in error


@pytest.mark.parametrize("rerun_table", [SENTIMENT_RERUNS, CHARLM_RERUNS], ids=["sentiment", "charlm"])
def test_the_functions_a_table_names_by_path_exist(rerun_table):
    """A table names its state reader and output checks as ``module:function`` (imported when called), so a
    misspelt one would only fail on the first rerun that needs it."""
    import importlib

    references = [rerun_table.read_state.reference] + [
        check.reference for check in rerun_table.upstream.values() if hasattr(check, "reference")
    ]
    assert len(references) == 3
    for reference in references:
        module_name, _, function_name = reference.partition(":")
        assert callable(getattr(importlib.import_module(module_name), function_name)), reference
