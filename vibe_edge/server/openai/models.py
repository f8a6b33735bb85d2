"""GET /v1/models: the one model this server serves."""

from __future__ import annotations

from vibe_edge.errors import ModelNotFound
from vibe_edge.server.host import ModelHost
from vibe_edge.server.openai.protocol import ModelCard, ModelList, ModelMeta


class OpenAIServingModels:
    def __init__(self, host: ModelHost):
        self.host = host

    def card(self) -> ModelCard:
        info = self.host.require_engine().info
        return ModelCard(
            id=self.host.model_id, created=self.host.created,
            meta=ModelMeta(name=info.name, architecture=info.architecture, n_params=info.n_params,
                           size_bytes=info.size_bytes, n_ctx_train=info.n_ctx_train,
                           slots=info.n_slots, ctx_per_slot=info.ctx_per_slot, thinks=info.thinks,
                           gpu_layers=info.gpu_layers))

    def list(self) -> ModelList:
        return ModelList(data=[self.card()])

    def get(self, model_id: str) -> ModelCard:
        card = self.card()
        if model_id != card.id:
            raise ModelNotFound(f"the model {model_id!r} does not exist; this server serves {card.id!r}",
                                param="model")
        return card
