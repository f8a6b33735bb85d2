"""vibe-edge: run VibeThinker-1.5B offline on llama.cpp.

The data path is the layout: checkpoint -> convert/ -> models/ (registry) -> engine/ ->
server/ | tui/. The public Python API is the engine's (see docs/ENGINE_API.md).
"""

__version__ = "0.1.0"
