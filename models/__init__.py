"""Keras model builders (imported as ``seqflow.models``).

This package builds Keras layers and models only: it never compiles, fits or logs. Training, evaluation and
tracking live in ``seqflow.sentiment.train``, ``seqflow.core.evaluation`` and ``seqflow.core.tracking``.
"""

from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class EmbeddedSpec:
    """What every builder needs first: the size of the vocabulary it embeds, the embedding width and the
    recurrent units (each pipeline's spec adds its own)."""

    vocab_size: int
    embedding_dim: int = 64
    rnn_units: int = 64


def build_named(builders: Mapping[str, Callable[[Any], Any]], architecture: str, spec: Any, what: str = "architecture") -> Any:
    """The model ``builders[architecture]`` builds from ``spec``, or a ValueError naming the unknown ``what`` and
    listing the known names (each pipeline keeps its own builder table)."""
    try:
        builder = builders[architecture]
    except KeyError:
        raise ValueError(f"unknown {what} {architecture!r}; known: {sorted(builders)}") from None
    return builder(spec)
