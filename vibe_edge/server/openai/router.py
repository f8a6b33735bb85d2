"""The OpenAI-compatible routes. Each one only hands its request to a serving object, which
the app keeps in `app.state.openai` (vLLM's layout: a router per API, a serving object per
endpoint)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from vibe_edge.server.openai.chat import OpenAIServingChat
from vibe_edge.server.openai.completions import OpenAIServingCompletion
from vibe_edge.server.openai.models import OpenAIServingModels
from vibe_edge.server.openai.protocol import ChatCompletionRequest, CompletionRequest

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
ENDPOINTS = {CHAT_PATH: "chat", COMPLETIONS_PATH: "completions"}  # path -> metrics label

router = APIRouter(tags=["openai"])


@dataclass(frozen=True)
class OpenAIServings:
    chat: OpenAIServingChat
    completions: OpenAIServingCompletion
    models: OpenAIServingModels


def _servings(request: Request) -> OpenAIServings:
    return request.app.state.openai


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    return JSONResponse(_servings(request).models.list().model_dump())


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> Response:
    return JSONResponse(_servings(request).models.get(model_id).model_dump())


@router.post(CHAT_PATH)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    return await _servings(request).chat.create(body, request)


@router.post(COMPLETIONS_PATH)
async def completions(body: CompletionRequest, request: Request) -> Response:
    return await _servings(request).completions.create(body, request)
