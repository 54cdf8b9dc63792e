"""The pipelines' configuration under its old import path: ``from seqflow.config import X`` keeps working.

The settings live where they belong: the shared machinery (validated sections, ``--set`` overrides, profiles,
execution options, seeds) in :mod:`seqflow.core.config` and :mod:`seqflow.core.overrides`, each pipeline's sections and profiles in
:mod:`seqflow.sentiment.config` / :mod:`seqflow.sentiment.profiles` and :mod:`seqflow.charlm.config`.
This module only re-exports their public names.
"""

from __future__ import annotations

from seqflow.charlm.config import (
    ALL_CHAR_ARCHITECTURES,
    CHARLM_PROFILES,
    CHARLM_RERUN_TASKS,
    DEFAULT_CHARLM_PROFILE,
    CharArchitecture,
    CharContractConfig,
    CharDataConfig,
    CharLMConfig,
    CharPromotionConfig,
    CharSamplingConfig,
    CharTrainingConfig,
    get_charlm_profile,
    resolve_charlm_config,
    validate_charlm_config,
    with_charlm_overrides,
)
from seqflow.core.config import (
    DEFAULT_DASK_WORKERS,
    RUNNERS,
    SEED_MAX,
    ExecutionConfig,
    RunnerKind,
    Seed,
    flat_dict,
)
from seqflow.core.overrides import parse_assignments, replace_settings
from seqflow.sentiment.config import (
    ALL_ARCHITECTURES,
    NGRAM_ARCHITECTURES,
    OVERRIDE_SYNTAX,
    RERUN_TASKS,
    ArchitectureOverride,
    ArchitectureSettings,
    BehaviourConfig,
    ContractConfig,
    DataConfig,
    LrSchedule,
    OptimizerName,
    PaddingSide,
    PipelineConfig,
    PromotionConfig,
    TokenisationConfig,
    TrainingConfig,
    describe_override,
    validate_config,
    with_overrides,
)
from seqflow.sentiment.profiles import DEFAULT_PROFILE, PROFILES, get_profile, resolve_pipeline_config

__all__ = [
    "ALL_ARCHITECTURES", "ALL_CHAR_ARCHITECTURES", "CHARLM_PROFILES", "CHARLM_RERUN_TASKS", "DEFAULT_CHARLM_PROFILE",
    "DEFAULT_DASK_WORKERS", "DEFAULT_PROFILE", "NGRAM_ARCHITECTURES", "OVERRIDE_SYNTAX", "PROFILES", "RERUN_TASKS",
    "RUNNERS", "SEED_MAX", "ArchitectureOverride", "ArchitectureSettings", "BehaviourConfig", "CharArchitecture",
    "CharContractConfig", "CharDataConfig", "CharLMConfig", "CharPromotionConfig", "CharSamplingConfig",
    "CharTrainingConfig", "ContractConfig", "DataConfig", "ExecutionConfig", "LrSchedule", "OptimizerName",
    "PaddingSide", "PipelineConfig", "PromotionConfig", "RunnerKind", "Seed", "TokenisationConfig", "TrainingConfig",
    "describe_override", "flat_dict", "get_charlm_profile", "get_profile", "parse_assignments", "replace_settings",
    "resolve_charlm_config", "resolve_pipeline_config", "validate_charlm_config", "validate_config",
    "with_charlm_overrides", "with_overrides",
]
