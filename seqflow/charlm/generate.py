"""Text generation with a character model's step model, and the registered pyfunc around it.

The step model (:func:`seqflow.models.charlm.build_step_model`) takes ``[ids, *states]`` and returns
``[logits, *new_states]``. :class:`CharGenerator` reads the prefix once (one call over the whole prefix from a
zero state), then samples one character per call, feeding back only that character and the carried state.

The registered pyfunc refuses a batch with a prefix the model cannot read (characters outside its vocabulary,
which it never saw in training and would read as the untrained unknown id), a negative length, a temperature
that is negative or not finite, or more characters than :func:`max_generation_length` allows (per row and in
all), as a whole, naming each such row; see :class:`seqflow.sentiment.serving.InputRefused`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from seqflow.charlm.text import UNKNOWN_ID
from seqflow.core.trusted_models import PyfuncKind
from seqflow.core.errors import ConfigError
from seqflow.core.refusals import REFUSED_ROWS_SHOWN, REFUSED_TEXT_PREVIEW_CHARS, InputRefused

# Artifact keys of the logged pyfunc model (a mixture model also has MIXTURE_ARTIFACT, the n-gram's file).
STEP_MODEL_ARTIFACT = "step_model"
VOCABULARY_ARTIFACT = "vocabulary"
MIXTURE_ARTIFACT = "ngram_mixture"
# Input and output columns of the pyfunc.
PREFIX_COLUMN, LENGTH_COLUMN, TEMPERATURE_COLUMN, SEED_COLUMN = "prefix", "length", "temperature", "seed"
# The character fed first when the prefix is empty: the models learn text that follows a line break.
EMPTY_PREFIX_START = "\n"
# Unknown characters of a prefix named in a refusal.
UNKNOWN_CHARS_SHOWN = 20
# Characters one generation call (one CLI call, one HTTP request: all rows together) may ask for. Generation
# takes time and memory in proportion to the length and cannot be stopped once started, so without a bound one
# request can hold a core for hours (the server keeps generating after the client has gone).
DEFAULT_MAX_GENERATION_LENGTH = 20_000
MAX_GENERATION_LENGTH_VARIABLE = "SEQFLOW_MAX_GENERATION_LENGTH"
# The generation loop counts in int32.
INT32_MAX = 2**31 - 1


def max_generation_length(environ: dict[str, str] | None = None) -> int:
    """The most characters one generation call may produce: ``SEQFLOW_MAX_GENERATION_LENGTH`` of the process
    environment (read at each call, so a model server started with it obeys it), else the default."""
    environ = os.environ if environ is None else environ
    raw = (environ.get(MAX_GENERATION_LENGTH_VARIABLE) or "").strip()
    if not raw:
        return DEFAULT_MAX_GENERATION_LENGTH
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if not 1 <= limit <= INT32_MAX:
        raise ConfigError(f"{MAX_GENERATION_LENGTH_VARIABLE}={raw!r} is not a whole number from 1 to {INT32_MAX}")
    return limit


def generation_problem(length: int, temperature: float, max_length: int) -> str | None:
    """Why ``length`` characters at ``temperature`` cannot be generated, or None."""
    if length < 0:
        return f"{LENGTH_COLUMN} must not be negative, got {length}"
    if length > max_length:
        return (
            f"{LENGTH_COLUMN} {length} is more than the {max_length} characters one generation may produce "
            f"(set {MAX_GENERATION_LENGTH_VARIABLE} to allow more)"
        )
    if not math.isfinite(temperature) or temperature < 0:
        return f"{TEMPERATURE_COLUMN} must be a finite number of at least 0, got {temperature}"
    return None


class CharGenerator:
    """Prefix in, continuation out, carrying the recurrent state from one character to the next.

    The whole generation is one compiled TensorFlow graph: the prefix is read once, then a ``tf.while_loop``
    samples a character and feeds back only that character and the carried state. A Python loop calling the
    model once per character spends most of its time on per-call overhead, not on the model.
    """

    def __init__(self, step_model: Any, vocabulary: list[str]) -> None:
        import tensorflow as tf

        self.vocabulary = vocabulary
        self._index = {char: i for i, char in enumerate(vocabulary)}
        self.state_sizes = [int(tensor.shape[-1]) for tensor in step_model.inputs[1:]]
        # The unknown id stands for "a character not in training", which has no text to emit: never sampled.
        unknown_mask = tf.constant(
            [-np.inf if i == UNKNOWN_ID else 0.0 for i in range(len(vocabulary))], dtype=tf.float32
        )

        def next_ids(logits, temperature, seed, step):  # noqa: ANN001, ANN202 - tensors
            masked = logits + unknown_mask
            step_seed = tf.stack([seed[0], seed[1] + step])
            return tf.cond(
                temperature > 0,
                lambda: tf.random.stateless_categorical(masked / temperature, 1, seed=step_seed, dtype=tf.int32)[:, 0],
                lambda: tf.argmax(masked, axis=-1, output_type=tf.int32),
            )

        def run(prefix_ids, length, temperature, seed):  # noqa: ANN001, ANN202 - tensors
            states = [tf.zeros((1, size)) for size in self.state_sizes]
            outputs = step_model([prefix_ids, *states], training=False)
            generated = tf.TensorArray(tf.int32, size=length)

            def body(step, logits, states, generated):  # noqa: ANN001, ANN202
                chosen = next_ids(logits, temperature, seed, step)
                outputs = step_model([chosen[:, None], *states], training=False)
                return step + 1, outputs[0][:, -1, :], list(outputs[1:]), generated.write(step, chosen[0])

            _, _, _, generated = tf.while_loop(
                lambda step, *_: step < length,
                body,
                [tf.constant(0), outputs[0][:, -1, :], list(outputs[1:]), generated],
            )
            return generated.stack()

        self._run = tf.function(
            run,
            input_signature=[
                tf.TensorSpec((1, None), tf.int32),
                tf.TensorSpec((), tf.int32),
                tf.TensorSpec((), tf.float32),
                tf.TensorSpec((2,), tf.int32),
            ],
        )

    def encode(self, text: str) -> np.ndarray:
        return np.array([[self._index.get(char, UNKNOWN_ID) for char in text]], dtype=np.int32)

    def unknown_characters(self, text: str) -> list[str]:
        """Characters of ``text`` that :meth:`encode` reads as the unknown id (never seen in training, so their
        embedding is untrained), in order of first appearance."""
        return list(dict.fromkeys(char for char in text if self._index.get(char, UNKNOWN_ID) == UNKNOWN_ID))

    def prefix_problem(self, prefix: str) -> str | None:
        """Why this model cannot continue ``prefix``, or None. (Training's sample texts may start from a
        validation line with unseen characters; they are diagnostics and use :meth:`generate` directly.)"""
        if not prefix:
            if self.unknown_characters(EMPTY_PREFIX_START):
                return "is empty, and this model's vocabulary has no line break to start from: give a prefix"
            return None
        unknown = self.unknown_characters(prefix)
        if not unknown:
            return None
        shown = "".join(unknown[:UNKNOWN_CHARS_SHOWN]) + ("..." if len(unknown) > UNKNOWN_CHARS_SHOWN else "")
        return (
            f"has {len(unknown)} character(s) outside the model's vocabulary of {len(self.vocabulary) - 1} "
            f"(never seen in its training text, or too rare there to get an id): {shown!r}"
        )

    def generate(self, prefix: str, length: int, temperature: float, seed: int | None = None) -> str:
        """``length`` characters continuing ``prefix`` (the prefix itself is not repeated); the same seed
        gives the same text."""
        seed = _checked_seed(length, temperature, seed)
        ids = self._run(
            self.encode(prefix or EMPTY_PREFIX_START), np.int32(length), np.float32(temperature),
            np.array([seed % (2**31 - 1), 0], dtype=np.int32),
        ).numpy()
        return "".join(self.vocabulary[i] for i in ids)


def _checked_seed(length: int, temperature: float, seed: int | None) -> int:
    """``seed`` (a fresh one if None) once ``length`` and ``temperature`` are known to be usable."""
    if not 0 <= length <= INT32_MAX:
        raise ValueError(f"length must be from 0 to {INT32_MAX}, got {length}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number of at least 0, got {temperature}")
    return int(np.random.default_rng().integers(0, 2**31 - 1)) if seed is None else seed


class MixtureGenerator(CharGenerator):
    """A mixture model's generator (``training.ngram_interpolation``): each character is drawn from
    λ·p_network + (1-λ)·p_ngram given the text so far. The n-gram's distribution is numpy, so the loop is Python
    around one compiled network step per character (slower than :class:`CharGenerator`'s graph loop)."""

    def __init__(self, step_model: Any, vocabulary: list[str], mixture: Any) -> None:
        import tensorflow as tf

        super().__init__(step_model, vocabulary)
        if mixture.vocab_size != len(vocabulary):
            raise ConfigError(
                f"the model's n-gram has {mixture.vocab_size} ids but its vocabulary {len(vocabulary)}: retrain the model"
            )
        self.mixture = mixture

        def step(ids, states):  # noqa: ANN001, ANN202 - tensors
            outputs = step_model([ids, *states], training=False)
            return tf.nn.softmax(outputs[0][:, -1, :]), list(outputs[1:])

        # The concrete function, called directly: the polymorphic one re-checks its arguments at every character.
        self._step = tf.function(step).get_concrete_function(
            tf.TensorSpec((1, None), tf.int32), [tf.TensorSpec((1, size), tf.float32) for size in self.state_sizes],
        )

    def generate(self, prefix: str, length: int, temperature: float, seed: int | None = None) -> str:
        import tensorflow as tf

        rng = np.random.default_rng(_checked_seed(length, temperature, seed))
        history = self.mixture.order - 1
        context = [int(i) for i in self.encode(prefix or EMPTY_PREFIX_START)[0]]
        probabilities, states = self._step(tf.constant([context], tf.int32), [tf.zeros((1, s)) for s in self.state_sizes])
        generated = []
        for _ in range(length):
            recent = context[len(context) - history :] if history else []
            mixed = self.mixture.mix(probabilities.numpy()[0].astype(np.float64), recent)
            mixed[UNKNOWN_ID] = 0.0
            if temperature == 0:
                chosen = int(np.argmax(mixed))
            else:
                with np.errstate(divide="ignore"):
                    scaled = np.log(mixed) / temperature
                weights = np.exp(scaled - scaled.max())
                cumulative = np.cumsum(weights)
                chosen = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), len(mixed) - 1)
            generated.append(chosen)
            context.append(chosen)
            probabilities, states = self._step(tf.constant([[chosen]], tf.int32), states)
        return "".join(self.vocabulary[i] for i in generated)


def load_generator(step_model_path: str | Path, vocabulary_path: str | Path, mixture_path: str | Path | None = None) -> CharGenerator:
    """The generator of a logged model's files; with the n-gram file of a mixture model, its :class:`MixtureGenerator`."""
    import keras

    vocabulary = json.loads(Path(vocabulary_path).read_text(encoding="utf-8"))
    # Safe mode: the file is data; a Lambda layer's pickled bytecode in it is refused, never run.
    step_model = keras.saving.load_model(step_model_path, compile=False, safe_mode=True)
    if mixture_path is None:
        return CharGenerator(step_model, vocabulary)
    from seqflow.charlm.mixture import NgramMixture

    return MixtureGenerator(step_model, vocabulary, NgramMixture.load(mixture_path))


def _column(frame: pd.DataFrame, name: str, default: Any) -> list[Any]:
    if name not in frame.columns:
        return [default] * len(frame)
    return [default if value is None or (isinstance(value, float) and np.isnan(value)) else value for value in frame[name]]


class CharGenerationModel(mlflow.pyfunc.PythonModel):
    """The registered character model: rows of ``prefix``, ``length``, ``temperature`` (and optional ``seed``)
    in; ``text`` (prefix + continuation) and ``continuation`` out."""

    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow PythonModelContext
        # A mixture model (training.ngram_interpolation) also has the n-gram's file; earlier models do not.
        self._generator = load_generator(
            context.artifacts[STEP_MODEL_ARTIFACT], context.artifacts[VOCABULARY_ARTIFACT],
            context.artifacts.get(MIXTURE_ARTIFACT),
        )

    # A DataFrame hint: MLflow infers no schema from it and validates nothing, and stops warning for a hint.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if PREFIX_COLUMN not in frame.columns:
            raise InputRefused(f"input needs a {PREFIX_COLUMN!r} column; got columns {list(frame.columns)}")
        try:
            rows = list(zip(
                [str(prefix) for prefix in _column(frame, PREFIX_COLUMN, "")],
                [int(length) for length in _column(frame, LENGTH_COLUMN, 200)],
                [float(temperature) for temperature in _column(frame, TEMPERATURE_COLUMN, 1.0)],
                [None if seed is None else int(seed) for seed in _column(frame, SEED_COLUMN, None)],
            ))
        except (TypeError, ValueError, OverflowError) as exc:
            # e.g. a length of "ten" or infinity: refused like any other unusable row, not a traceback
            raise InputRefused(
                f"{LENGTH_COLUMN} and {SEED_COLUMN} must be whole numbers and {TEMPERATURE_COLUMN} a number: {exc}"
            ) from None
        refuse_unusable_rows(self._generator, rows)
        continuations = [self._generator.generate(*row) for row in rows]
        prefixes = [prefix for prefix, *_ in rows]
        return pd.DataFrame(
            {"text": [p + c for p, c in zip(prefixes, continuations)], "continuation": continuations}
        )


CHAR_GENERATION = PyfuncKind(
    name="char-generation",
    description="a character generation model",
    model_class=CharGenerationModel,
    code_path=Path(__file__).with_name("generate_pyfunc.py"),
    artifact_keys=frozenset({STEP_MODEL_ARTIFACT, VOCABULARY_ARTIFACT}),
    input_columns=(PREFIX_COLUMN, LENGTH_COLUMN, TEMPERATURE_COLUMN, SEED_COLUMN),
    used_by="`seqflow generate`",
)


def _row_problem(generator: CharGenerator, prefix: str, length: int, temperature: float, max_length: int) -> str | None:
    if limits := generation_problem(length, temperature, max_length):
        return limits
    problem = generator.prefix_problem(prefix)
    return f"prefix {prefix[:REFUSED_TEXT_PREVIEW_CHARS]!r} {problem}" if problem else None


def refuse_unusable_rows(generator: CharGenerator, rows: list[tuple[str, int, float, int | None]]) -> None:
    """:class:`InputRefused` naming every row the model cannot generate for, or saying that all rows together
    ask for more than :func:`max_generation_length`; nothing is generated then."""
    max_length = max_generation_length()
    problems = [
        (number, problem)
        for number, (prefix, length, temperature, _) in enumerate(rows, start=1)
        if (problem := _row_problem(generator, prefix, length, temperature, max_length))
    ]
    total = sum(length for _, length, _, _ in rows)
    if not problems and total > max_length:
        raise InputRefused(
            f"the {len(rows)} rows ask for {total} characters in all, more than the {max_length} one generation "
            f"may produce: send fewer rows per request (or set {MAX_GENERATION_LENGTH_VARIABLE} to allow more)"
        )
    if problems:
        named = "; ".join(f"row {number} of {len(rows)}: {problem}" for number, problem in problems[:REFUSED_ROWS_SHOWN])
        more = f"; and {len(problems) - REFUSED_ROWS_SHOWN} more" if len(problems) > REFUSED_ROWS_SHOWN else ""
        raise InputRefused(f"cannot generate for {len(problems)} of {len(rows)} row(s), the whole batch is refused: {named}{more}")
