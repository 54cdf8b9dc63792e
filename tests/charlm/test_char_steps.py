"""The registration gate's baselines: the ones the evaluate step scored, not a second order search and fit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from seqflow.charlm import steps
from seqflow.charlm.baselines import BaselineScores
from seqflow.charlm.records import EvaluatedCharModel
from seqflow.core.state import _load, _plain


def _evaluated(architecture: str, baselines: BaselineScores | None) -> EvaluatedCharModel:
    return EvaluatedCharModel(
        architecture=architecture, run_id=f"run-{architecture}", model_uri="models:/m-1", dataset_digest="d",
        val_loss=1.5, val_perplexity=4.48, best_epoch=3, epochs_run=4, seconds=1.0, parameters=10, baselines=baselines,
    )


CONFIG = SimpleNamespace(training=SimpleNamespace(validation_streams=16))


def test_the_gate_reads_the_baselines_evaluate_scored(monkeypatch):
    scored = BaselineScores(unigram_loss=3.3, ngram_loss=1.56, ngram_order=6)
    monkeypatch.setattr(steps, "char_baselines", lambda *args: pytest.fail("the baselines were fitted again"))
    assert steps._baselines([_evaluated("char_gru", scored), _evaluated("char_lstm", scored)], None, CONFIG) is scored


def test_records_from_before_the_baselines_were_carried_fit_them_again(monkeypatch):
    fitted = BaselineScores(unigram_loss=3.3, ngram_loss=1.56, ngram_order=6)
    calls = []
    monkeypatch.setattr(steps, "char_baselines", lambda encoded, streams: calls.append(streams) or fitted)
    assert steps._baselines([_evaluated("char_lstm", None)], "encoded", CONFIG) is fitted
    assert calls == [16]


def test_the_baselines_survive_the_execution_state_and_old_states_still_load():
    model = _evaluated("char_lstm", BaselineScores(unigram_loss=3.3, ngram_loss=1.56, ngram_order=6))
    assert _load(EvaluatedCharModel, _plain(model)) == model
    # pipeline_state.json of an earlier release: no "baselines" key.
    old = {key: value for key, value in _plain(model).items() if key != "baselines"}
    assert _load(EvaluatedCharModel, old).baselines is None
