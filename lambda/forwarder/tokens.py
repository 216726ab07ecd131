"""Token estimates for when an engine does not report counts (no tokenizer in the Lambda).

About 4 bytes of UTF-8 per token: right on average for English BPE vocabularies, and it
keeps CJK (3 bytes per character, often one token each) from being counted as a quarter
token per character. Estimates are flagged as such to the client (x-ownllm-usage).
"""

from __future__ import annotations

import json

BYTES_PER_TOKEN = 4
# Chat templates wrap each message in role markers; OpenAI's rule of thumb is 3-4 tokens
# per message plus 3 to prime the assistant's answer.
TOKENS_PER_MESSAGE = 4
TOKENS_TO_PRIME_ANSWER = 3


def estimate(text: str) -> int:
    if not text:
        return 0
    size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
    return -(-size // BYTES_PER_TOKEN)


def estimate_chat(messages: list[dict], extras: dict | None = None) -> int:
    """Messages, the tool calls they carry, and the tools and response format the engine's chat
    template also puts in front of the model (as JSON text, about as long in tokens)."""
    total = TOKENS_TO_PRIME_ANSWER
    for m in messages:
        total += TOKENS_PER_MESSAGE + estimate(m.get("content") or "")
        if m.get("tool_calls"):
            total += estimate(json.dumps(m["tool_calls"], ensure_ascii=False))
    for key in ("tools", "response_format"):
        if (extras or {}).get(key):
            total += estimate(json.dumps((extras or {})[key], ensure_ascii=False))
    return total
