"""Model facts: the bundled table, lookups by Hub id, local config.json files."""

import json

import pytest

from ownllm.perf.models import ModelError, from_config, lookup, resolve

REQUIRED = [
    "meta-llama/Llama-2-7b-hf",
    "meta-llama/Llama-2-13b-chat-hf",
    "meta-llama/Llama-2-70b-chat-hf",
    "meta-llama/Meta-Llama-3-8B-Instruct",
    "meta-llama/Meta-Llama-3-70B-Instruct",
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Meta-Llama-3.1-70B-Instruct",
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    *(f"Qwen/Qwen2.5-{s}-Instruct" for s in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B")),
    *(f"Qwen/Qwen3-{s}" for s in ("0.6B", "1.7B", "4B", "8B", "14B", "32B")),
    "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    *(f"google/gemma-2-{s}-it" for s in ("2b", "9b", "27b")),
    *(f"google/gemma-3-{s}-it" for s in ("1b", "4b", "12b", "27b")),
    "microsoft/Phi-3-mini-4k-instruct",
    "microsoft/Phi-3-small-8k-instruct",
    "microsoft/Phi-3-medium-4k-instruct",
    "microsoft/phi-4",
]


@pytest.mark.parametrize("model_id", REQUIRED)
def test_every_common_open_model_is_in_the_bundled_table(model_id):
    arch = lookup(model_id)
    assert arch is not None, model_id
    assert arch.source.startswith("https://huggingface.co/")


def test_qwen25_7b_instruct_has_its_real_size_not_a_guess_from_the_id():
    arch = resolve("Qwen/Qwen2.5-7B-Instruct")
    assert (arch.params_b, arch.layers, arch.kv_heads, arch.head_dim) == (7.62, 28, 4, 128)
    assert arch.name == "Qwen/Qwen2.5-7B-Instruct"


def test_lookup_ignores_case_and_chat_suffixes():
    assert lookup("META-LLAMA/llama-2-7B-CHAT-HF") == lookup("meta-llama/Llama-2-7b-hf")
    assert lookup("Qwen2.5-7B-Instruct-AWQ") == lookup("Qwen/Qwen2.5-7B")


@pytest.mark.parametrize(
    ("model_id", "kib_per_token"),
    [
        ("meta-llama/Meta-Llama-3-8B", 128),  # shared/reference/performance.md
        ("meta-llama/Llama-2-7b-hf", 512),
        ("meta-llama/Meta-Llama-3-70B", 320),
        ("Qwen/Qwen2.5-7B", 56),
    ],
)
def test_kv_cache_per_token_matches_the_published_figures(model_id, kib_per_token):
    arch = resolve(model_id)
    assert arch.kv_elements(1) * 2 / 1024 == kib_per_token


def test_gemma3_local_layers_stop_growing_their_kv_at_the_window():
    arch = resolve("google/gemma-3-27b-it")
    per_layer = 2 * 16 * 128
    assert arch.kv_elements(4096) == per_layer * (10 * 4096 + 52 * 1024)


def test_mixtral_decodes_one_token_through_a_quarter_of_its_experts():
    arch = resolve("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert arch.expert_fraction_read(1) == 0.25
    assert arch.expert_fraction_read(64) == pytest.approx(1 - 0.75**64)


def test_an_unknown_model_without_size_is_refused_with_the_ways_out():
    with pytest.raises(ModelError) as exc:
        resolve("acme/secret-13b")
    assert str(exc.value).startswith(
        "--model 'acme/secret-13b': not in the bundled table; pass --model-size-b or --model-config PATH/config.json"
    )


def test_an_unknown_model_with_a_size_gets_a_llama_shaped_architecture():
    arch = resolve("acme/secret-13b", size_b=13)
    assert (arch.params_b, arch.layers, arch.kv_heads, arch.head_dim) == (13, 40, 8, 128)


def test_a_local_config_json_describes_an_unknown_model(tmp_path):
    config = {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    arch = from_config(path, name="acme/llama-like")
    assert (arch.layers, arch.kv_heads, arch.head_dim, arch.context) == (32, 8, 128, 131072)
    # Llama-3.1-8B has exactly this shape: 8.03B parameters (norms aside).
    assert arch.params_b == pytest.approx(8.03, rel=0.001)
