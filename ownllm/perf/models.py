"""Model facts: the architecture numbers a performance prediction needs.

A bundled table (data/models.csv, one Hugging Face config.json per row, with its URL) is
looked up by Hub id; a model not in it is described by explicit numbers or by its own
local config.json. Guessing the size from the id ("7b") is what this replaces.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
MODELS_CSV = DATA_DIR / "models.csv"

# Suffixes that name a fine-tune or packaging of the same architecture.
_VARIANT_SUFFIXES = re.compile(
    r"(-(instruct|chat|it|hf|base|awq|gptq|int4|int8|fp8|bnb-4bit|gguf|dynamic|fp8-dynamic|w4a16|w8a8|w8a16))+$"
)


class ModelError(ValueError):
    """A model that cannot be looked up or described; the message names what to pass."""


@dataclass(frozen=True)
class ModelArch:
    name: str
    params_b: float  # total parameters, billions
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int = 32000
    intermediate: int = 0
    tied_embeddings: bool = False
    context: int = 4096
    context_known: bool = True  # False: `context` is assumed (a size-shaped guess), not the model's own
    active_params_b: float = 0.0  # per token; MoE only (0 = dense)
    experts: int = 0
    experts_per_token: int = 0
    sliding_window: int = 0  # tokens a local-attention layer keeps (0 = none)
    full_layers: int = -1  # layers attending to the whole context (-1 = all)
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return self.experts > 1 and self.active_params_b > 0

    @property
    def active_b(self) -> float:
        return self.active_params_b if self.is_moe else self.params_b

    @property
    def embedding_params(self) -> float:
        """One vocab x hidden table (the input embedding; the output head is the same size)."""
        return float(self.vocab * self.hidden)

    @property
    def attention_layers_full(self) -> int:
        return self.layers if self.full_layers < 0 else self.full_layers

    def kv_elements_per_token(self) -> int:
        """K and V elements per token per full-attention layer set: 2 * layers * kv_heads * head_dim."""
        return 2 * self.layers * self.kv_heads * self.head_dim

    def kv_elements(self, context: float) -> float:
        """KV elements one sequence holds at `context` tokens (local layers stop at their window)."""
        per_layer = 2 * self.kv_heads * self.head_dim
        full = self.attention_layers_full
        local = self.layers - full
        window = self.sliding_window or context
        return per_layer * (full * context + local * min(context, window))

    def expert_fraction_read(self, batch: float) -> float:
        """Share of expert weights a decode step touches with `batch` tokens (1 for dense models).

        Each token picks k of E experts; the chance an expert is untouched by B tokens is (1-k/E)^B.
        """
        if not self.is_moe:
            return 1.0
        return 1.0 - (1.0 - self.experts_per_token / self.experts) ** max(batch, 1.0)


def _key(model_id: str) -> str:
    name = model_id.strip().lower().rstrip("/")
    name = name.split("/")[-1]
    return _VARIANT_SUFFIXES.sub("", name)


def _as_int(text: str, default: int = 0) -> int:
    return int(text) if text.strip() else default


@cache
def model_table() -> dict[str, ModelArch]:
    """The bundled architectures, keyed by lower-case model name without org and variant suffix."""
    table: dict[str, ModelArch] = {}
    with MODELS_CSV.open(newline="") as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            arch = ModelArch(
                name=row["hf_id"],
                params_b=float(row["params_b"]),
                layers=int(row["layers"]),
                hidden=int(row["hidden"]),
                heads=int(row["heads"]),
                kv_heads=int(row["kv_heads"]),
                head_dim=int(row["head_dim"]),
                vocab=int(row["vocab"]),
                intermediate=_as_int(row["intermediate"]),
                tied_embeddings=row["tied_embeddings"] == "true",
                context=int(row["context"]),
                active_params_b=float(row["active_params_b"] or 0.0),
                experts=_as_int(row["experts"]),
                experts_per_token=_as_int(row["experts_per_token"]),
                sliding_window=_as_int(row["sliding_window"]),
                full_layers=_as_int(row["full_layers"], -1),
                source=row["source"],
            )
            table[_key(arch.name)] = arch
    # Names people also use for the same weights.
    aliases = {
        "llama-2-7b": "llama-2-7b",
        "llama-3-8b": "meta-llama-3-8b",
        "llama-3-70b": "meta-llama-3-70b",
        "meta-llama-3.1-8b": "llama-3.1-8b",
        "meta-llama-3.1-70b": "llama-3.1-70b",
        "llama-3.3-70b": "llama-3.3-70b",
        "mistral-7b-instruct-v0.1": "mistral-7b-v0.1",
        "mistral-7b-instruct-v0.2": "mistral-7b-v0.1",
        "mistral-7b-v0.3": "mistral-7b-instruct-v0.3",
        "mixtral-8x7b-instruct-v0.1": "mixtral-8x7b-v0.1",
        "mixtral-8x7b": "mixtral-8x7b-v0.1",
        "phi-3-mini": "phi-3-mini-4k-instruct",
        "phi-3-small": "phi-3-small-8k-instruct",
        "phi-3-medium": "phi-3-medium-4k-instruct",
    }
    for alias, target in aliases.items():
        if target in table:
            table.setdefault(alias, table[target])
    # Keys without the "-4k/-8k/-128k-instruct" tail resolve through the suffix rule already;
    # Mistral v0.2 instruct has a 32k window without sliding attention.
    if "mistral-7b-v0.1" in table:
        table["mistral-7b-instruct-v0.2"] = replace(
            table["mistral-7b-v0.1"], name="mistral-7b-instruct-v0.2", sliding_window=0, full_layers=-1
        )
    return table


def lookup(model_id: str) -> ModelArch | None:
    """The bundled architecture for a Hub id (case-insensitive; -Instruct/-chat/-AWQ tails ignored)."""
    table = model_table()
    key = _key(model_id)
    if key in table:
        return table[key]
    # "Meta-Llama-3.1-8B-Instruct" style ids: drop a leading "meta-" as well.
    if key.startswith("meta-") and key[5:] in table:
        return table[key[5:]]
    return None


def from_config(path: str | Path, name: str = "", params_b: float | None = None) -> ModelArch:
    """Architecture from a local Hugging Face config.json (multimodal configs: their text_config)."""
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise ModelError(f"--model-config {path}: cannot read a JSON config ({exc})") from exc
    text = (cfg.get("text_config") or cfg) if isinstance(cfg, dict) else None
    if not isinstance(text, dict):
        raise ModelError(f"--model-config {path}: not a Hugging Face config.json (a JSON object of hyperparameters)")
    try:
        hidden = int(text["hidden_size"])
        layers = int(text["num_hidden_layers"])
        heads = int(text["num_attention_heads"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"--model-config {path}: lacks {exc}; needs hidden_size, num_hidden_layers, num_attention_heads"
        ) from exc
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    vocab = int(text.get("vocab_size") or 32000)
    inter = int(text.get("intermediate_size") or 4 * hidden)
    experts = int(text.get("num_local_experts") or text.get("num_experts") or 0)
    k = int(text.get("num_experts_per_tok") or 0)
    tied = bool(text.get("tie_word_embeddings", False))
    moe_inter = int(text.get("moe_intermediate_size") or inter)
    attn = layers * hidden * (heads + 2 * kv_heads) * head_dim + layers * heads * head_dim * hidden
    ffn_one = 3 * hidden * (moe_inter if experts else inter)
    emb = vocab * hidden * (1 if tied else 2)
    total = attn + layers * ffn_one * max(experts, 1) + emb
    active = attn + layers * ffn_one * k + emb if experts else 0
    window = int(text.get("sliding_window") or 0) if text.get("use_sliding_window", True) else 0
    return ModelArch(
        name=name or str(cfg.get("_name_or_path") or Path(path).parent.name),
        params_b=params_b if params_b else total / 1e9,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        intermediate=inter,
        tied_embeddings=tied,
        context=int(text.get("max_position_embeddings") or 4096),
        context_known=bool(text.get("max_position_embeddings")),
        active_params_b=active / 1e9,
        experts=experts,
        experts_per_token=k,
        sliding_window=window if window and window < int(text.get("max_position_embeddings") or 0) else 0,
        full_layers=-1 if not window else 0,
        source=f"config.json at {path}",
    )


def from_size(name: str, params_b: float) -> ModelArch:
    """A dense model known only by its size: a Llama-shaped architecture of that size.

    The shape (layers, hidden, GQA 8 KV heads of 128) is the typical one of current open
    models; it fixes the KV cache per token, which size alone does not.
    """
    if params_b <= 0:
        raise ModelError(f"--model-size-b {params_b:g}: must be a positive number of billions of parameters")
    # hidden ~ sqrt(P / (12.5 * layers)) with layers growing with size, as in the Llama family.
    layers = next(
        n for limit, n in ((2, 16), (5, 28), (10, 32), (20, 40), (40, 64), (math.inf, 80)) if params_b < limit
    )
    hidden = int(round((params_b * 1e9 / (12.5 * layers)) ** 0.5 / 128) * 128) or 128
    heads = max(hidden // 128, 1)
    return ModelArch(
        name=name or f"{params_b:g}B model",
        params_b=params_b,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=min(8, heads),
        head_dim=128,
        vocab=128256,
        context=8192,
        context_known=False,
        source="assumed Llama-shaped architecture from the size alone (pass --model-config for the real one)",
    )


def resolve(model_id: str = "", *, size_b: float | None = None, config_path: str | Path | None = None) -> ModelArch:
    """The architecture: a local config.json, else the bundled table, else a size-shaped guess.

    `size_b` overrides the parameter count of whatever was found (e.g. a pruned fine-tune).
    """
    if config_path:
        return from_config(config_path, name=model_id, params_b=size_b)
    arch = lookup(model_id) if model_id else None
    if arch is not None:
        arch = replace(arch, name=model_id.strip())
        return replace(arch, params_b=size_b) if size_b else arch
    if size_b:
        return from_size(model_id, size_b)
    known = ", ".join(sorted({a.name.split("/")[-1] for a in model_table().values()})[:8])
    raise ModelError(
        f"--model {model_id!r}: not in the bundled table; pass --model-size-b or --model-config PATH/config.json "
        f"(known models include {known}, ...)"
    )
