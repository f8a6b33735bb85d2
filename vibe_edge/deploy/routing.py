"""The headers that keep a conversation on the instance that holds its KV cache.

A chat resends its whole history every turn; only the instance that served the last turn has
that history in its prefix cache. The balancer routes on a conversation key so every turn of a
conversation lands on the same instance, and spreads requests without a key by load.

SESSION_HEADER: the conversation key a client sends on every turn, the first one included (the
key, not the first turn's placement, decides the instance; see docs/DEPLOY.md). vibe-edge's own
chat sends it. OpenAI's `user` body field is the fallback when the header is absent.

INSTANCE_HEADER: every response names the instance that produced it, so a client, a test or an
operator reading logs can see where a conversation lives.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

SESSION_HEADER = "X-Session-Id"
INSTANCE_HEADER = "X-Vibe-Edge-Instance"

# nginx hashes the key as given; long keys only cost hashing time, but an unbounded header is
# an easy way to fill logs. The nginx map ignores a `user` field longer than this.
MAX_KEY_CHARS = 256


def new_session_id() -> str:
    """A conversation key: random, so two users' conversations never share one by accident."""
    return secrets.token_urlsafe(12)


def conversation_key(messages: Sequence[Mapping[str, Any]], salt: str) -> str:
    """The same key on every turn of one conversation, with no state to keep: a digest of how
    the conversation opens (its messages up to and including the first user message), which
    later turns resend unchanged. Salted per client (new_session_id()), so two users who open
    with the same question are spread like any two conversations; one client's conversations
    that open alike share an instance, and with it their cached prefix. Editing the first
    message makes a new key, as it makes a new prefix."""
    opening: list[Any] = []
    for message in messages:
        opening.append([message.get("role"), message.get("content")])
        if message.get("role") == "user":
            break
    text = json.dumps([salt, opening], ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
