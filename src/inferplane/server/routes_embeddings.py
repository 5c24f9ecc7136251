"""POST /v1/embeddings: texts (or token ids) in, vectors out, as OpenAI's embedding response."""

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from inferplane.engine.compute.embedding import InputTooLongError
from inferplane.server import common
from inferplane.server.common import Timer
from inferplane.server.errors import APIError
from inferplane.server.protocol import EmbeddingRequest
from inferplane.server.telemetry import Outcome, record_outcome

router = APIRouter()
MAX_INPUTS = 2048  # OpenAI's limit per request


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
    state = common.server_state(request)
    embedder = state.embedding_model(body.model)
    request.state.model_label = body.model
    inputs = _checked_inputs(body)
    timer = Timer.started(state.clock)
    try:
        # Concurrent requests share one forward pass, run off the event loop.
        result = await embedder.embed(inputs, dimensions=body.dimensions, truncate=False)
    except InputTooLongError as error:
        raise APIError(400, str(error), param="input", code="context_length_exceeded") from error
    except ValueError as error:
        raise APIError(400, str(error), param=_param_of(error), code="invalid_value") from error
    timer.finish()
    data = [_item(i, row, body.encoding_format) for i, row in enumerate(result.embeddings)]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    payload = {"object": "list", "data": data, "model": body.model, "usage": usage}
    state.metrics.duration.labels(body.model).observe(timer.total_s)
    record_outcome(request, Outcome(prompt_tokens=result.prompt_tokens))
    headers = common.response_headers(request, common.new_id("embd"), timer)
    return JSONResponse(payload, headers=headers)


def _checked_inputs(body: EmbeddingRequest) -> list[str | list[int]]:
    inputs = body.inputs()
    if not inputs or len(inputs) > MAX_INPUTS:
        raise APIError(
            400, f"input must hold 1 to {MAX_INPUTS} items", param="input", code="invalid_value"
        )
    if any(len(item) == 0 for item in inputs):
        raise APIError(400, "inputs must not be empty", param="input", code="invalid_value")
    return inputs


def _param_of(error: ValueError) -> str:
    return "dimensions" if "dimension" in str(error) else "input"


def _item(index: int, row: np.ndarray[Any, Any], encoding: str) -> dict[str, Any]:
    embedding: list[float] | str
    if encoding == "base64":
        embedding = base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
    else:
        embedding = row.astype(float).tolist()
    return {"object": "embedding", "index": index, "embedding": embedding}
