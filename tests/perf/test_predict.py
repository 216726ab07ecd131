"""The physics: memory fit, KV capacity, bandwidth-bound decode, tensor-parallel costs."""

from dataclasses import fields, replace

import pytest

from ownllm.perf.hardware import GIB, GPUS, for_gpu, for_instance
from ownllm.perf.models import resolve
from ownllm.perf.predict import (
    PRECISIONS,
    RUNTIME_OVERHEAD_GIB,
    Efficiency,
    PredictionError,
    predict,
    saturation,
    weight_bytes,
)

# Datasheet figures reached exactly, no fixed costs: the bare roofline.
IDEAL = Efficiency(
    **{f.name: 0.0 for f in fields(Efficiency)} | {"bandwidth": 1.0, "flops": 1.0, "legacy_tgi_pcie_bandwidth": 1.0}
)
QWEN7 = resolve("Qwen/Qwen2.5-7B-Instruct")


def test_bf16_on_a_t4_is_refused_and_fp16_suggested():
    with pytest.raises(PredictionError) as exc:
        predict(QWEN7, for_gpu("t4"), "bf16")
    assert str(exc.value) == "--precision bf16: the T4 has no bf16; use --precision fp16 (same size and speed)"


def test_a_70b_model_in_bf16_does_not_fit_one_a10g_and_says_why():
    p = predict(resolve("meta-llama/Llama-3.1-70B-Instruct"), for_instance("ml.g5.2xlarge"), "bf16")
    assert (p.fits, p.max_concurrency, p.output_tokens_per_s) == (False, 0, 0.0)
    assert p.reason.startswith(
        "needs 131.6 GiB for weights and one 768-token sequence; 1 x A10G (ml.g5.2xlarge) leaves"
    )


def test_single_stream_decode_reads_the_weights_once_per_token():
    """Qwen2.5-7B on one A10G, ideal efficiency: a step reads every weight but the input embedding
    table (7.62e9 - 152064 x 3584 parameters x 2 bytes) plus the KV of one sequence at its mean
    context, 1 prompt token + half of 2 output tokens (2 x 57,344 bytes), at 600 GB/s."""
    p = predict(QWEN7, for_gpu("a10g"), "bf16", "vllm", 1, 2, 1, eff=IDEAL)
    weights_read = (7.62e9 - 152064 * 3584) * 2
    kv = 2 * 2 * 28 * 4 * 128 * 2
    assert p.per_request_tokens_per_s == pytest.approx(600e9 / (weights_read + kv))


def test_kv_capacity_counts_sequences_at_their_mean_length():
    """A10G: 22.49 GiB x 0.9, less the runtime (1 GiB, a 2048-token prefill chunk through the MLP,
    fp32 logits of 256 sequences) and 7.62e9 x 2 bytes of weights, is the KV pool;
    a 512+256-token request holds 512 + 128 tokens of 57,344 bytes on average."""
    p = predict(QWEN7, for_gpu("a10g"), "bf16", "vllm", 512, 256, 1, eff=IDEAL)
    runtime = RUNTIME_OVERHEAD_GIB * GIB + 2048 * (2 * 18944 + 4 * 3584) * 2 + 256 * 152064 * 4
    pool = 22.49 * 0.9 * GIB - runtime - 7.62e9 * 2
    assert p.kv_cache_gib == pytest.approx(pool / GIB)
    assert p.max_concurrency == int(pool // (640 * 57344))


def test_quantized_checkpoints_shrink_the_body_but_keep_embeddings_and_head_in_16_bits():
    """Qwen2.5-7B: untied input embedding and output head, 152064 x 3584 each."""
    emb = 2 * 152064 * 3584
    assert weight_bytes(QWEN7, PRECISIONS["bf16"]) == 7.62e9 * 2
    assert weight_bytes(QWEN7, PRECISIONS["fp8"]) == (7.62e9 - emb) * 1 + emb * 2
    assert weight_bytes(QWEN7, PRECISIONS["int4"]) == (7.62e9 - emb) * (0.5 + 4 / 128) + emb * 2


def test_more_concurrency_means_more_throughput_and_slower_requests_until_saturation():
    hw = for_instance("ml.g5.2xlarge")
    one, eight = (predict(QWEN7, hw, "bf16", "vllm", 512, 256, c) for c in (1, 8))
    assert eight.output_tokens_per_s > 5 * one.output_tokens_per_s
    assert eight.per_request_tokens_per_s < one.per_request_tokens_per_s
    beyond = predict(QWEN7, hw, "bf16", "vllm", 512, 256, 10 * one.max_concurrency)
    assert beyond.output_tokens_per_s == pytest.approx(
        predict(QWEN7, hw, "bf16", "vllm", 512, 256, one.max_concurrency).output_tokens_per_s
    )
    assert one.saturation_output_tokens_per_s >= 0.95 * beyond.output_tokens_per_s


def test_tensor_parallel_on_pcie_is_slower_than_on_nvlink():
    eff = replace(IDEAL, allreduce_nvlink_s=5e-6)
    h100 = for_gpu("h100", 4)
    pcie_h100 = replace(h100, gpu=replace(GPUS["h100"], link="pcie", link_gbs=32))
    model = resolve("meta-llama/Llama-3.1-70B-Instruct")
    nv = predict(model, h100, "bf16", "vllm", 512, 256, 1, eff=eff)
    pc = predict(model, pcie_h100, "bf16", "vllm", 512, 256, 1, eff=eff)
    assert pc.per_request_tokens_per_s < nv.per_request_tokens_per_s


def test_pcie_decode_pays_the_measured_nccl_latency_and_bus_bandwidth_per_all_reduce():
    l40s = for_gpu("l40s", 4)
    free_link = replace(l40s, gpu=replace(GPUS["l40s"], link="nvlink", link_gbs=1e12))
    pcie = predict(QWEN7, l40s, "bf16", "vllm", 512, 256, 1, eff=IDEAL)
    free = predict(QWEN7, free_link, "bf16", "vllm", 512, 256, 1, eff=IDEAL)
    # 28 layers x 2 all-reduces of one token's 3,584 x 2 bytes: 20 us over 4 GPUs plus the ring at 8.9 GB/s.
    per_all_reduce = 20e-6 + 2 * 3 / 4 * 3584 * 2 / 8.9e9
    extra = 1 / pcie.per_request_tokens_per_s - 1 / free.per_request_tokens_per_s
    assert extra == pytest.approx(2 * 28 * per_all_reduce, rel=1e-3)


def test_a_four_gpu_pcie_instance_outserves_one_gpu_of_its_kind_but_not_fourfold():
    one_gpu, four_gpus = for_instance("ml.g6e.xlarge"), for_instance("ml.g6e.12xlarge")
    _, one = saturation(QWEN7, one_gpu, "bf16", "vllm", 512, 256, min_tokens_per_s=20)
    _, four = saturation(QWEN7, four_gpus, "bf16", "vllm", 512, 256, min_tokens_per_s=20)
    assert one < four < 4 * one
    alone_one = predict(QWEN7, one_gpu, "bf16", "vllm", 512, 256, 1).per_request_tokens_per_s
    alone_four = predict(QWEN7, four_gpus, "bf16", "vllm", 512, 256, 1).per_request_tokens_per_s
    assert 2 * alone_one < alone_four < 4 * alone_one


def test_a_model_whose_attention_heads_do_not_split_over_the_gpus_does_not_fit():
    p = predict(QWEN7, for_gpu("l40s", 8), "bf16", "vllm", 512, 256, 1)
    assert (p.fits, p.reason) == (
        False,
        "its 28 attention heads do not split over 8 GPUs (vLLM needs the GPU count to divide them)",
    )
    assert saturation(QWEN7, for_gpu("l40s", 8)) == (0, 0.0)


def test_more_gpus_than_kv_heads_copy_the_kv_cache_onto_each_gpu():
    """Qwen2.5-3B has 2 KV heads: over 4 GPUs each keeps one, so a token takes twice its
    36 x 2 x 2 x 128 x 2 bytes in all."""
    qwen3 = resolve("Qwen/Qwen2.5-3B-Instruct")
    p = predict(qwen3, for_gpu("l40s", 4), "bf16", "vllm", 8000, 2000, 1, eff=IDEAL)
    pool = p.kv_cache_gib * GIB
    # A request holds its 8,000-token prompt and half its 2,000-token answer on average.
    assert p.max_concurrency == int(pool // (9000 * 36 * 2 * 2 * 128 * 2 * 2)) == 245


def test_the_speed_floor_lowers_the_saturation_point():
    hw = for_instance("ml.g5.2xlarge")
    free_c, free_tps = saturation(QWEN7, hw, "bf16", "vllm", 512, 256)
    floor_c, floor_tps = saturation(QWEN7, hw, "bf16", "vllm", 512, 256, min_tokens_per_s=25)
    assert floor_c < free_c and floor_tps < free_tps
    assert predict(QWEN7, hw, "bf16", "vllm", 512, 256, floor_c).per_request_tokens_per_s >= 25


def test_an_fp8_kv_cache_holds_twice_the_sequences():
    hw = for_instance("ml.g5.2xlarge")
    base = predict(QWEN7, hw, "bf16", "vllm", 2048, 1024, 1)
    fp8 = predict(QWEN7, hw, "bf16", "vllm", 2048, 1024, 1, kv_cache="fp8")
    assert fp8.kv_cache_gib == base.kv_cache_gib
    assert fp8.max_concurrency in (2 * base.max_concurrency, 2 * base.max_concurrency + 1)


def test_vllm_batches_up_to_1024_sequences_on_h100_but_256_on_a100():
    """vLLM's server defaults: max_num_seqs 1024 on >= 70 GiB GPUs other than the A100, else 256."""
    small = resolve("Qwen/Qwen2.5-0.5B-Instruct")
    assert predict(small, for_gpu("h100"), "bf16", "vllm", 128, 128, 1).max_concurrency == 1024
    assert predict(small, for_gpu("a100-80gb"), "bf16", "vllm", 128, 128, 1).max_concurrency == 256
    assert predict(small, for_gpu("h100"), "bf16", "vllm", 128, 128, 1, max_batch=64).max_concurrency == 64
