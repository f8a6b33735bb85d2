"""The OpenAI-compatible API: wire models (protocol), a serving object per endpoint, the router."""

from vibe_edge.server.openai.chat import OpenAIServingChat
from vibe_edge.server.openai.completions import OpenAIServingCompletion
from vibe_edge.server.openai.models import OpenAIServingModels
from vibe_edge.server.openai.router import CHAT_PATH, COMPLETIONS_PATH, ENDPOINTS, OpenAIServings, router

__all__ = ["CHAT_PATH", "COMPLETIONS_PATH", "ENDPOINTS", "OpenAIServingChat", "OpenAIServingCompletion",
           "OpenAIServingModels", "OpenAIServings", "router"]
