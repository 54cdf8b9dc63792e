"""What one ``seqflow run`` execution produced (``pipeline_state.json`` with its parent MLflow run), for
``seqflow rerun``: the split files and digests, tokenised arrays, contract reports, trained and evaluated models
per architecture, the registration. Written and read by :mod:`seqflow.core.state`.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqflow.sentiment.config import PipelineConfig, with_overrides
from seqflow.sentiment.profiles import get_profile
from seqflow.core.state import ExecutionState, read_state
from seqflow.sentiment.datasets import SplitFiles
from seqflow.sentiment.records import EvaluatedModel, TrainedModel, dataset_tags
from seqflow.sentiment.tokenise import TokenisedData


@dataclass(frozen=True)
class PipelineState(ExecutionState[PipelineConfig, SplitFiles, TrainedModel, EvaluatedModel]):
    """What one ``seqflow run`` execution produced: the records every execution has, and its tokenised arrays."""

    tokenised: TokenisedData

    def dataset_tags(self) -> dict[str, str]:
        """The data tags of the execution's runs: source, split digests and the arrays' digest."""
        return dataset_tags(self.split_files, self.tokenised)


def state_from_json(text: str) -> PipelineState:
    return read_state(PipelineState, lambda profile, overrides: with_overrides(get_profile(profile), overrides), text)
