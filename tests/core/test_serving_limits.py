"""``seqflow serve`` bounds what one request may make it hold: bodies over the limit are refused (413) before
MLflow's scoring app reads them; values that are not review text are refused (400) by row, never stringified."""

from __future__ import annotations

import asyncio
import json

import pytest

from seqflow.core.scoring_app import RequestBodyLimit


def _call(limit: int, chunks: list[bytes], content_length: int | None = None) -> tuple[list[dict], list[bytes], int]:
    """Run one HTTP request through the middleware; (messages sent, bodies the app saw, receive() calls)."""
    seen: list[bytes] = []
    sent: list[dict] = []
    calls = 0

    async def app(scope, receive, send):  # noqa: ANN001, ANN202
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():  # noqa: ANN202
        nonlocal calls
        calls += 1
        if calls > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[calls - 1], "more_body": calls < len(chunks)}

    async def send(message):  # noqa: ANN001, ANN202
        sent.append(message)

    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    asyncio.run(RequestBodyLimit(app, limit)({"type": "http", "headers": headers}, receive, send))
    return sent, seen, calls


def test_body_over_the_declared_limit_is_refused_unread():
    sent, seen, calls = _call(100, [b"x" * 50] * 20, content_length=1000)
    assert sent[0]["status"] == 413 and seen == [] and calls == 0
    message = json.loads(sent[1]["body"])["message"]
    assert "request body of 1,000 bytes is over this server's limit of 100 bytes" in message


def test_chunked_body_is_refused_as_soon_as_it_passes_the_limit():
    sent, seen, calls = _call(100, [b"x" * 40] * 50)
    assert sent[0]["status"] == 413 and seen == []
    assert calls == 3  # 40 + 40 + 40 > 100: the remaining 47 chunks are never read


def test_body_within_the_limit_reaches_the_app_whole():
    sent, seen, _ = _call(100, [b"a" * 40, b"b" * 60], content_length=100)
    assert sent[0]["status"] == 200 and seen == [b"a" * 40 + b"b" * 60]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """MLflow's scoring app for a tiny sentiment pyfunc, behind a 64 KiB limit, as `seqflow serve` builds it."""
    import mlflow.pyfunc
    from starlette.testclient import TestClient

    from seqflow.core.scoring_app import build_app
    from seqflow.models.architectures import ModelSpec, build_model, build_serving_model
    from seqflow.sentiment.serving import KERAS_ARTIFACT, ReviewSentimentModel

    folder = tmp_path_factory.mktemp("served")
    vocabulary = ["", "[UNK]", "good", "bad", "film"]
    classifier = build_model("embedding_pool", ModelSpec(vocab_size=len(vocabulary), embedding_dim=4))
    build_serving_model(classifier, vocabulary, max_length=8, padding="post", truncation="post").save(folder / "s.keras")
    mlflow.pyfunc.save_model(
        str(folder / "model"), python_model=ReviewSentimentModel(), artifacts={KERAS_ARTIFACT: str(folder / "s.keras")}
    )
    return TestClient(build_app(str(folder / "model"), 64 * 1024))


def test_scoring_app_refuses_oversized_bodies_and_non_text_reviews(client):
    small = {"dataframe_records": [{"text": "good film"}, {"text": "bad"}]}
    answered = client.post("/invocations", json=small)
    assert answered.status_code == 200 and len(answered.json()["predictions"]) == 2

    huge = {"dataframe_records": [{"text": "good film " * 100}] * 100}  # ~100 KB
    refused = client.post("/invocations", json=huge)
    assert refused.status_code == 413 and refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"

    mixed = {"dataframe_records": [{"text": "good film"}, {"text": 5}, {"text": {"a": 1}}]}
    refused = client.post("/invocations", json=mixed)
    assert refused.status_code == 400
    error = refused.json()
    assert error["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in error
    assert "row 2 of 3 is int '5', not text" in error["message"] and "row 3 of 3 is dict" in error["message"]

    # A JSON escape that is a lone surrogate: refused by row, without a stack trace.
    body = '{"dataframe_records": [{"text": "good"}, {"text": "\\udcff great film"}]}'
    refused = client.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and "stack_trace" not in refused.json()
    assert "row 2 of 2 is not valid UTF-8" in refused.json()["message"]

    # Raw bytes that are not UTF-8 in the body: MLflow refuses the body, without a stack trace.
    body = b'{"dataframe_records": [{"text": "\xff\xfe great film"}]}'
    refused = client.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and "stack_trace" not in refused.json(), refused.json()
