"""Character models: shapes, stateful vs stateless, the step model against the full model, generation."""

from __future__ import annotations

import numpy as np
import pytest

from seqflow.charlm.train import stream_loss, training_windows
from seqflow.core.errors import DataSourceError
from seqflow.models.charlm import CHAR_MODEL_BUILDERS, CharLMSpec, build_char_model, build_step_model, state_sizes

VOCAB = 23


@pytest.mark.parametrize("architecture", sorted(CHAR_MODEL_BUILDERS))
@pytest.mark.parametrize("layers", [1, 2])
def test_step_model_reproduces_the_full_model(architecture, layers):
    spec = CharLMSpec(vocab_size=VOCAB, embedding_dim=8, rnn_units=12, layers=layers)
    model = build_char_model(architecture, spec)
    ids = np.random.default_rng(0).integers(0, VOCAB, (3, 15)).astype(np.int32)
    full = np.asarray(model(ids))
    assert full.shape == (3, 15, VOCAB)
    step = build_step_model(model)
    assert [int(t.shape[-1]) for t in step.inputs[1:]] == state_sizes(architecture, spec)
    # Character by character, carrying the returned states.
    states = [np.zeros((3, size), np.float32) for size in state_sizes(architecture, spec)]
    logits = []
    for t in range(15):
        outputs = step([ids[:, t : t + 1], *states])
        logits.append(np.asarray(outputs[0])[:, 0])
        states = [np.asarray(s) for s in outputs[1:]]
    np.testing.assert_allclose(np.stack(logits, axis=1), full, atol=1e-5)
    # A prefix read at once, then one more character: the same logits as the full model there.
    outputs = step([ids[:, :14], *[np.zeros((3, s), np.float32) for s in state_sizes(architecture, spec)]])
    last = step([ids[:, 14:], *[np.asarray(s) for s in outputs[1:]]])
    np.testing.assert_allclose(np.asarray(last[0])[:, 0], full[:, 14], atol=1e-5)


def test_stateful_model_carries_state_between_calls_and_matches_the_step_model():
    spec = CharLMSpec(vocab_size=VOCAB, embedding_dim=8, rnn_units=12, stateful=True, batch_size=2)
    model = build_char_model("char_lstm", spec)
    assert model.input_shape == (2, None)
    ids = np.random.default_rng(1).integers(0, VOCAB, (2, 20)).astype(np.int32)
    first, second = np.asarray(model(ids[:, :10])), np.asarray(model(ids[:, 10:]))
    stateless = build_char_model("char_lstm", CharLMSpec(vocab_size=VOCAB, embedding_dim=8, rnn_units=12))
    stateless.set_weights(model.get_weights())
    whole = np.asarray(stateless(ids))
    # The second call continued from the state the first left: the same as reading 20 characters at once.
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()
    np.testing.assert_allclose(np.asarray(model(ids[:, 10:])), np.asarray(stateless(ids[:, 10:])), atol=1e-5)
    step = build_step_model(model)
    zero = [np.zeros((2, 12), np.float32)] * 2
    np.testing.assert_allclose(np.asarray(step([ids, *zero])[0]), whole, atol=1e-5)


def test_training_windows_stateless_and_stateful():
    ids = np.arange(101, dtype=np.int32)
    x, y = training_windows(ids, seq_length=10, batch_size=4, stateful=False)
    assert x.shape == (10, 10) and (y == x + 1).all()
    x, y = training_windows(ids, seq_length=5, batch_size=4, stateful=True)
    # 4 streams of 25 characters, 5 windows each; row j of batch k+1 continues row j of batch k.
    assert x.shape == (20, 5) and (y == x + 1).all()
    batches = x.reshape(5, 4, 5)
    for k in range(4):
        assert (batches[k + 1][:, 0] == batches[k][:, -1] + 1).all()
    with pytest.raises(DataSourceError, match="too short for stateful training"):
        training_windows(np.arange(30), seq_length=10, batch_size=4, stateful=True)


def test_stream_loss_is_the_cross_entropy_of_the_full_model():
    spec = CharLMSpec(vocab_size=VOCAB, embedding_dim=8, rnn_units=12)
    model = build_char_model("char_gru", spec)
    ids = np.random.default_rng(2).integers(0, VOCAB, 121).astype(np.int32)
    logits = np.asarray(model(ids[None, :-1]), dtype=np.float64)[0]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -log_probs[np.arange(120), ids[1:]].mean()
    # One stream read in windows of 7 with the state carried: exactly the full model's loss.
    assert stream_loss(build_step_model(model), ids, streams=1, window=7) == pytest.approx(expected, rel=1e-5)


def test_generator_is_seeded_greedy_at_zero_and_never_emits_unknown():
    from seqflow.charlm.generate import CharGenerator

    vocabulary = ["\ufffd", *"abcdefghijklmnopqrstuv"]
    model = build_char_model("char_lstm", CharLMSpec(vocab_size=len(vocabulary), embedding_dim=8, rnn_units=12))
    generator = CharGenerator(build_step_model(model), vocabulary)
    text = generator.generate("abc", 200, 1.5, seed=4)
    assert len(text) == 200 and "\ufffd" not in text and set(text) <= set(vocabulary[1:])
    assert generator.generate("abc", 200, 1.5, seed=4) == text
    assert generator.generate("abc", 200, 1.5, seed=5) != text
    # Temperature 0 follows the model's most likely character at every step.
    greedy = generator.generate("ab", 5, 0.0)
    step = build_step_model(model)
    ids = [1, 2]
    for _ in range(5):
        logits = np.array(step([np.array([ids], np.int32), *[np.zeros((1, 12), np.float32)] * 2])[0])[0, -1]
        logits[0] = -np.inf
        ids.append(int(np.argmax(logits)))
    assert greedy == "".join(vocabulary[i] for i in ids[2:])
    assert generator.generate("", 3, 1.0, seed=0) != ""
