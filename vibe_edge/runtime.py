"""From settings to a running engine: resolve the model, plan for this machine, load.

Every front end (run, bench, serve, chat) opens its engine here, so `--model`, the hardware
plan and the "does it fit" check behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vibe_edge.engine import Engine, EngineConfig
from vibe_edge.hardware import HardwareInfo, Plan, check_fits, detect_hardware, make_plan
from vibe_edge.modelfile import GGUFFacts, inspect_gguf
from vibe_edge.registry import ResolvedModel, resolve_model, verify_model_file
from vibe_edge.settings import Settings
from vibe_edge.types import SpecConfig

__all__ = ["PreparedModel", "engine_config", "open_engine", "prepare_model"]


@dataclass(frozen=True)
class PreparedModel:
    """Everything decided before llama.cpp loads a byte: which file, its facts, the plan."""

    resolved: ResolvedModel
    facts: GGUFFacts
    hardware: HardwareInfo
    plan: Plan


def prepare_model(settings: Settings, *, model: str | None = None,
                  hardware: HardwareInfo | None = None, **plan_overrides: object) -> PreparedModel:
    """Resolve, inspect and plan. Raises ModelNotFound, ModelFileError or PlanError (before
    loading, so a model that cannot fit is an error message, not an OOM kill)."""
    resolved = resolve_model(model if model is not None else settings.model,
                             settings.resolved_models_dir)
    facts = inspect_gguf(resolved.path)
    if resolved.origin == "registry":  # bytes as registered (hashed once per size and mtime)
        verify_model_file(resolved.path.parent, resolved.path, resolved.manifest)
    hardware = hardware or detect_hardware()
    overrides = settings.plan_overrides()
    overrides.update({k: v for k, v in plan_overrides.items() if v is not None})
    plan = make_plan(hardware, facts, **overrides)
    check_fits(plan)
    return PreparedModel(resolved, facts, hardware, plan)


def engine_config(prepared: PreparedModel, settings: Settings, **changes: object) -> EngineConfig:
    plan = prepared.plan
    values: dict[str, object] = dict(
        model_path=prepared.resolved.path,
        name=prepared.resolved.name,
        n_slots=plan.n_slots,
        ctx_per_slot=plan.ctx_per_slot,
        threads=plan.threads,
        threads_batch=plan.threads_batch,
        gpu_layers=plan.gpu_layers,
        kv_type=plan.kv_type,
        flash_attn=plan.flash_attn,
        batch_size=plan.batch_size,
        queue_size=settings.queue_size,
        request_timeout_s=settings.request_timeout_s,
        spec=SpecConfig(enabled=settings.spec, max_draft=settings.spec_max_draft,
                        ngram_min=settings.spec_ngram_min, ngram_max=settings.spec_ngram_max,
                        batch_tokens=plan.spec_batch_tokens),
    )
    values.update(changes)
    return EngineConfig(**values)  # type: ignore[arg-type]


def open_engine(settings: Settings, *, model: str | None = None,
                notify: Callable[[str], None] | None = None, **plan_overrides: object) -> Engine:
    """Resolve, plan and load. `notify` receives notices for the user (e.g. "using the demo
    model because no VibeThinker GGUF was found")."""
    prepared = prepare_model(settings, model=model, **plan_overrides)
    if prepared.resolved.notice and notify is not None:
        notify(prepared.resolved.notice)
    for warning in prepared.plan.warnings:
        if notify is not None:
            notify(warning)
    return Engine(engine_config(prepared, settings))
