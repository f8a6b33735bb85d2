"""Where replies come from. The app talks to one small interface (base.Backend), so one widget
tree serves both:

- LocalBackend: the engine in this process (vibe_edge.types.EngineAPI).
- OpenAIBackend: a running `vibe-edge serve`, llama-server, Ollama or any OpenAI-compatible
  server, over TCP (base URL) or a Unix socket, read with the server's own wire models.

Tests drive the app with LocalBackend over the shared scripted engine (tests/doubles.py).
"""

from vibe_edge.tui.backends.base import Backend, BackendError, ChatStream
from vibe_edge.tui.backends.local import LocalBackend
from vibe_edge.tui.backends.remote import OpenAIBackend

__all__ = ["Backend", "BackendError", "ChatStream", "LocalBackend", "OpenAIBackend"]
