"""The process ``seqflow serve`` starts: MLflow's scoring app (``/ping``, ``/invocations``) behind a request
size limit, run by uvicorn.

MLflow's ``/invocations`` reads the whole body into memory, then parses it into a DataFrame, and neither MLflow
nor uvicorn has a setting that bounds a body's size (a 54 MB request was accepted): a check inside the model
would come after both copies exist. :class:`RequestBodyLimit` refuses a body over the limit before the app
sees it: at once from its ``Content-Length``, or, for a chunked body, as soon as the bytes received pass it.

    python -m seqflow.core.scoring_app MODEL_URI --host H --port P --max-request-bytes N
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Awaitable, Callable, Sequence

# The limit `seqflow serve` applies unless told otherwise: ~12,000 IMDB-sized reviews in one JSON request.
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestBodyLimit:
    """ASGI middleware: HTTP requests whose body is over ``max_bytes`` get 413 and never reach ``app``.

    The body is read here (at most ``max_bytes`` of it) and handed to ``app`` as one message, so memory per
    request is bounded by the limit whatever the client sends or claims."""

    def __init__(self, app: App, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, f"{int(declared):,} bytes")
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nothing to answer
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await self._refuse(send, f"over {self.max_bytes:,} bytes")
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, send: Send, size: str) -> None:
        body = json.dumps({
            "error_code": "REQUEST_LIMIT_EXCEEDED",
            "message": (
                f"request body of {size} is over this server's limit of {self.max_bytes:,} bytes; send fewer reviews "
                "per request (or start `seqflow serve` with a larger --max-request-mb)"
            ),
        }).encode()
        await send({
            "type": "http.response.start", "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the already-read body once, then whatever the connection says next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def build_app(model_uri: str, max_bytes: int) -> App:
    """MLflow's scoring app for ``model_uri`` (loaded as ``mlflow models serve`` loads it), behind the limit."""
    from mlflow.pyfunc import scoring_server

    return RequestBodyLimit(scoring_server.init(scoring_server.load_model_with_mlflow_config(model_uri)), max_bytes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqflow.core.scoring_app", description=__doc__.splitlines()[0])
    parser.add_argument("model_uri")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(build_app(args.model_uri, args.max_request_bytes), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":  # pragma: no cover - the child process of `seqflow serve`
    sys.exit(main())
