"""Export a conversation as Markdown (for reading) and JSON (for tools), reasoning included."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from vibe_edge.tui.samples import sample_line, tally_text
from vibe_edge.tui.store import COMPLETE, STOPPED, Conversation, HistoryStore, StoredMessage

__all__ = ["EXPORT_FORMAT", "conversation_to_dict", "conversation_to_markdown", "export_conversation"]

EXPORT_FORMAT = "vibe-edge-chat"
EXPORT_VERSION = 1

_STATUS_NOTE = {
    "stopped": "stopped by the user",
    "length": "cut off at the token limit",
    "error": "failed",
    "interrupted": "interrupted (the app was closed while it streamed)",
    "streaming": "still streaming",
}


def conversation_to_dict(conv: Conversation, messages: list[StoredMessage]) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "conversation": {
            "id": conv.id, "title": conv.title, "preset": conv.preset, "model": conv.model,
            "created_at": _iso(conv.created_at), "updated_at": _iso(conv.updated_at),
        },
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                **({"reasoning": m.reasoning} if m.role == "assistant" else {}),
                **({"status": m.status, "finish_reason": m.finish_reason, "boxed": m.boxed,
                    "stats": m.stats, "notices": m.notices, "error": m.error}
                   if m.role == "assistant" else {}),
                **({"samples": m.samples} if m.samples else {}),  # a voted reply: each sample, the vote
                "created_at": _iso(m.created_at),
            }
            for m in messages
        ],
    }


def conversation_to_markdown(conv: Conversation, messages: list[StoredMessage]) -> str:
    lines = [f"# {conv.title}", ""]
    meta = [f"exported {_iso(time.time())}"]
    if conv.model:
        meta.insert(0, f"model: {conv.model}")
    if conv.preset:
        meta.insert(1 if conv.model else 0, f"preset: {conv.preset}")
    lines += ["_" + " · ".join(meta) + "_", ""]
    for m in messages:
        if m.role == "user":
            lines += ["## You", "", m.content, ""]
        elif m.role == "system":
            lines += ["## System", "", m.content, ""]
        else:
            lines += ["## VibeThinker" if not conv.model else f"## {conv.model}", ""]
            if m.reasoning:
                lines += ["<details><summary>Thinking</summary>", "", m.reasoning.strip(), "",
                          "</details>", ""]
            for n in m.notices:
                lines += [f"> **Note:** {n.get('message', '')}", ""]
            if m.content:
                lines += [m.content, ""]
            if m.boxed:
                lines += [f"**Final answer:** $\\boxed{{{m.boxed}}}$", ""]
            if m.samples:
                lines += _samples_markdown(m)
            if m.status != COMPLETE:
                note = _STATUS_NOTE.get(m.status, m.status)
                if m.error:
                    note += f": {m.error}"
                lines += [f"_[{note}]_", ""]
    return "\n".join(lines).rstrip() + "\n"


def _samples_markdown(m: StoredMessage) -> list[str]:
    record = m.samples or {}
    vote, samples = record.get("vote"), record.get("samples") or []
    lines = [] if m.status == STOPPED else [f"_{tally_text(vote, len(samples))}_", ""]
    for i, entry in enumerate(samples):
        lines += [f"<details><summary>Sample {sample_line({**entry, 'index': i}, vote)}</summary>", ""]
        if entry.get("reasoning"):
            lines += ["_Thinking:_", "", str(entry["reasoning"]).strip(), ""]
        lines += [str(entry.get("answer") or "").strip() or "_(no answer)_", "", "</details>", ""]
    return lines


def export_conversation(store: HistoryStore, conversation_id: int, directory: str | Path
                        ) -> tuple[Path, Path]:
    """Write NAME.md and NAME.json into `directory`; returns both paths."""
    conv = store.get_conversation(conversation_id)
    if conv is None:
        raise KeyError(conversation_id)
    messages = store.messages(conversation_id)
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"chat-{conv.id}-{_slug(conv.title)}"
    md, js = directory / f"{stem}.md", directory / f"{stem}.json"
    md.write_text(conversation_to_markdown(conv, messages), encoding="utf-8")
    js.write_text(json.dumps(conversation_to_dict(conv, messages), ensure_ascii=False, indent=2) + "\n",
                  encoding="utf-8")
    return md, js


def _slug(title: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()
    return slug[:40] or "untitled"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))
