"""Character-level language models (seeds 003 and 004-D), one ``build_<name>`` each, and their registry.

Every builder takes a :class:`CharLMSpec` and returns an uncompiled ``keras.Model`` mapping character ids
``(batch, time)`` to next-character logits ``(batch, time, vocab_size)``: an embedding, 1-2 recurrent layers
returning every step, and a Dense output over the vocabulary (logits; the loss applies the softmax).

:func:`build_step_model` builds the generation/evaluation twin of a trained model: the same layers and weights,
but each recurrent layer takes its state as an input and returns its new state as an output. Called on a
prefix with zero states it warms the state once; called again on one character with the returned states it
continues the text without re-reading it. Models are built here, never compiled, fitted or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from seqflow.models import EmbeddedSpec, build_named


@dataclass(frozen=True)
class CharLMSpec(EmbeddedSpec):
    """What a builder needs; built from the training config and the vocabulary actually found."""

    rnn_units: int = 256
    # Stateful models carry their state from one batch to the next; they need a fixed batch size.
    stateful: bool = False
    batch_size: int | None = None
    layers: int = 1
    dropout: float = 0.0


# Keras layer class per architecture, and how many state tensors one layer carries (LSTM: h and c).
_RECURRENT_LAYERS: dict[str, tuple[type[layers.Layer], int]] = {
    "char_simple_rnn": (layers.SimpleRNN, 1),
    "char_gru": (layers.GRU, 1),
    "char_lstm": (layers.LSTM, 2),
}


def _recurrent_name(index: int) -> str:
    return f"rnn_{index + 1}"


def _build(architecture: str, spec: CharLMSpec) -> keras.Model:
    if spec.layers not in (1, 2):
        raise ValueError(f"a character model has 1 or 2 recurrent layers, got {spec.layers}")
    if spec.stateful and not spec.batch_size:
        raise ValueError("a stateful character model needs a fixed batch_size")
    layer_class, _ = _RECURRENT_LAYERS[architecture]
    # A stateful layer keeps one state per batch row, so the batch size is part of the input shape.
    ids = keras.Input(batch_shape=(spec.batch_size if spec.stateful else None, None), dtype="int32", name="char_ids")
    features = layers.Embedding(spec.vocab_size, spec.embedding_dim, name="embedding")(ids)
    for index in range(spec.layers):
        # return_sequences: a prediction at every step, so one window trains on all its shifted targets.
        features = layer_class(
            spec.rnn_units, return_sequences=True, stateful=spec.stateful, dropout=spec.dropout, name=_recurrent_name(index)
        )(features)
    # Logits of the next character; float32 so the softmax in the loss stays precise.
    logits = layers.Dense(spec.vocab_size, dtype="float32", name="next_char_logits")(features)
    return keras.Model(ids, logits, name=architecture)


def build_char_simple_rnn(spec: CharLMSpec) -> keras.Model:
    """Embedding -> SimpleRNN x layers -> Dense(vocab): seeds 003 (lyrics) and 004-D (Shakespeare)."""
    return _build("char_simple_rnn", spec)


def build_char_gru(spec: CharLMSpec) -> keras.Model:
    """Embedding -> GRU x layers -> Dense(vocab)."""
    return _build("char_gru", spec)


def build_char_lstm(spec: CharLMSpec) -> keras.Model:
    """Embedding -> LSTM x layers -> Dense(vocab): the default model of the benchmark."""
    return _build("char_lstm", spec)


CHAR_MODEL_BUILDERS: dict[str, Callable[[CharLMSpec], keras.Model]] = {
    "char_simple_rnn": build_char_simple_rnn,
    "char_gru": build_char_gru,
    "char_lstm": build_char_lstm,
}


def build_char_model(architecture: str, spec: CharLMSpec) -> keras.Model:
    return build_named(CHAR_MODEL_BUILDERS, architecture, spec, "character architecture")


def state_sizes(architecture: str, spec: CharLMSpec) -> list[int]:
    """Width of every state tensor the step model takes and returns, in order (layer by layer; LSTM h, c)."""
    _, per_layer = _RECURRENT_LAYERS[architecture]
    return [spec.rnn_units] * (per_layer * spec.layers)


def build_step_model(trained: keras.Model) -> keras.Model:
    """The trained model's twin with explicit state: inputs ``[ids (batch, time), *states]``, outputs
    ``[logits (batch, time, vocab), *new_states]``; weights copied, stateless, any batch size, no dropout."""
    architecture = trained.name
    layer_class, per_layer = _RECURRENT_LAYERS[architecture]
    embedding = trained.get_layer("embedding")
    recurrent = [layer for layer in trained.layers if isinstance(layer, layer_class)]
    output = trained.get_layer("next_char_logits")
    units = recurrent[0].units

    ids = keras.Input(shape=(None,), dtype="int32", name="char_ids")
    state_inputs = [
        keras.Input(shape=(units,), name=f"state_{i + 1}") for i in range(per_layer * len(recurrent))
    ]
    features = layers.Embedding(embedding.input_dim, embedding.output_dim, name="embedding")(ids)
    new_states = []
    for index, _ in enumerate(recurrent):
        layer_states = state_inputs[index * per_layer : (index + 1) * per_layer]
        outputs = layer_class(units, return_sequences=True, return_state=True, name=_recurrent_name(index))(
            features, initial_state=layer_states if per_layer > 1 else layer_states[0]
        )
        features, states = outputs[0], outputs[1:]
        new_states.extend(states)
    logits = layers.Dense(output.units, dtype="float32", name="next_char_logits")(features)
    step = keras.Model([ids, *state_inputs], [logits, *new_states], name=f"{architecture}_step")
    for name in ["embedding", "next_char_logits", *(_recurrent_name(i) for i in range(len(recurrent)))]:
        step.get_layer(name).set_weights(trained.get_layer(name).get_weights())
    return step
