"""course_utils.deploy (notebook 09): KV cache, KV int8/int4, W4A16 RTN and AWQ, batching, LMDeploy commands."""

import itertools

import pytest
import torch

from course_utils import data
from course_utils.deploy import batching, engines, kvcache, quant


@pytest.fixture(scope="module")
def tiny():
    from course_utils import mini

    torch.manual_seed(0)
    model, processor = mini.build_internvl(image_size=32, patch_size=8, max_tiles=1, hidden=64, layers=2)
    return model.eval(), processor


@pytest.fixture(scope="module")
def embeds(tiny):
    model, processor = tiny
    items = data.make_shapes(3, image_size=32, seed=3)
    return kvcache.prompt_embeds(model, processor, [it.image for it in items], ["what shape is it?"] * 3)


# --- the KV cache -------------------------------------------------------------------------------------------------


def test_forward_matches_transformers(tiny, embeds):
    model, _ = tiny
    lm = model.model.language_model
    with torch.no_grad():
        ours = kvcache.forward(lm, embeds)
        theirs = lm(inputs_embeds=embeds).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def test_generate_same_tokens_with_and_without_cache(tiny, embeds):
    model, _ = tiny
    a = kvcache.generate(model, embeds, 6, use_cache=False)
    b = kvcache.generate(model, embeds, 6, use_cache=True)
    assert a.shape == (3, 6) and torch.equal(a, b)


def test_memory_formula_equals_the_real_cache(tiny, embeds):
    model, _ = tiny
    cache = kvcache.KVCache()
    kvcache.generate(model, embeds, 5, cache=cache)
    cfg = model.config.text_config
    per_token = kvcache.kv_bytes_per_token(cfg.num_hidden_layers, cfg.num_key_value_heads,
                                           cfg.hidden_size // cfg.num_attention_heads, bytes_per_value=4)  # fmt: skip
    tokens = embeds.shape[1] + 4  # the last new token is never fed back
    assert len(cache.layers) == cfg.num_hidden_layers and cache.tokens() == tokens
    assert cache.nbytes() == per_token * tokens * embeds.shape[0]


def test_kv_budget_arithmetic():
    per_token = kvcache.kv_bytes_per_token(24, 8, 128)  # internlm2-chat-1.8b, fp16
    assert per_token == 98304
    got = kvcache.kv_budget(40, 4.4, 0.5, per_token, 8192)
    assert got["cache_gb"] == pytest.approx(17.8)
    assert got["tokens"] == pytest.approx(17.8e9 / 98304)
    assert got["sessions"] == pytest.approx(got["tokens"] / 8192)


# --- KV quantization ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 4])
def test_kv_round_trip_within_half_a_step(bits):
    x = torch.randn(2, 4, 7, 32) * 3
    codes, scale, zero = quant.quantize_kv(x, bits)
    assert codes.dtype == torch.uint8 and int(codes.max()) <= 2**bits - 1
    assert scale.shape == zero.shape == (2, 4, 7, 1)
    # a direct float reference, one vector at a time
    for b, h, t in itertools.product(range(2), range(4), range(7)):
        v = x[b, h, t]
        step = float(v.max() - v.min()) / (2**bits - 1)
        back = quant.dequantize_kv(codes[b, h, t], scale[b, h, t], zero[b, h, t])
        assert float((back - v).abs().max()) <= step / 2 * 1.01 + 2e-3 * float(v.abs().max())
    err8 = (quant.dequantize_kv(*quant.quantize_kv(x, 8)) - x).abs().mean()
    err4 = (quant.dequantize_kv(*quant.quantize_kv(x, 4)) - x).abs().mean()
    assert err8 < err4 / 8


def test_kv_refuses_other_bits():
    with pytest.raises(ValueError, match="4 or 8"):
        quant.quantize_kv(torch.randn(3, 8), 3)


def test_pack4_round_trip():
    codes = torch.randint(0, 16, (2, 3, 5, 8), dtype=torch.uint8)
    packed = quant.pack4(codes)
    assert packed.shape == (2, 3, 5, 4) and torch.equal(quant.unpack4(packed), codes)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_cache_memory_and_answers(tiny, embeds, bits):
    model, _ = tiny
    full, small = kvcache.KVCache(), quant.QuantKVCache(bits)
    kvcache.generate(model, embeds, 4, cache=full)
    kvcache.generate(model, embeds, 4, cache=small)
    cfg = model.config.text_config
    d = cfg.hidden_size // cfg.num_attention_heads
    per_vector = d * bits / 8 + 2 * 2  # codes + fp16 scale and zero
    assert small.nbytes() == full.nbytes() / (4 * d) * per_vector
    k_full, k_small = full.layers[0][0], small._load(*small.layers[0][:3])
    step = (k_full.amax(-1, keepdim=True) - k_full.amin(-1, keepdim=True)) / (2**bits - 1)
    assert bool(((k_small - k_full).abs() <= step / 2 * 1.01 + 1e-2).all())


# --- weight-only quantization: RTN and AWQ ------------------------------------------------------------------------


@pytest.mark.parametrize("bits,group", [(4, 16), (3, 8), (4, 64)])
def test_weight_round_trip_error_bound(bits, group):
    w = torch.randn(6, 64)
    codes, scale, zero = quant.quantize_weight(w, bits, group)
    assert codes.shape == w.shape and scale.shape == zero.shape == (6, 64 // group)
    back = quant.dequantize_weight(codes, scale, zero)
    for r, g in itertools.product(range(6), range(64 // group)):
        chunk = w[r, g * group : (g + 1) * group]
        step = float(chunk.max() - chunk.min()) / (2**bits - 1)
        err = float((back[r, g * group : (g + 1) * group] - chunk).abs().max())
        assert (
            err <= step * 1.001 + 1e-6
        )  # half a step from rounding, up to half a step from the integer zero


def test_weight_bytes():
    assert quant.weight_bytes((256, 128), 4, 128) == 256 * 128 / 2 + 256 * 1 * 4


@pytest.mark.parametrize("group", [48, 0, 200])
def test_group_size_that_does_not_divide_is_refused(group):
    with pytest.raises(ValueError, match="does not divide"):
        quant.quantize_weight(torch.randn(4, 128), 4, group)


def _brute_force_awq(x, weights, bits, group, grid):
    """The search written the slow way: every alpha, every output element of every layer."""
    importance = [max(float(x[:, j].abs().mean()), 1e-6) for j in range(x.shape[1])]
    best = (float("inf"), None)
    for n in range(grid):
        s = torch.tensor([v ** (n / grid) for v in importance])
        s = s / (s.max() * s.min()).sqrt()
        total = 0.0
        for w in weights:
            q = quant.fake_quantize(w * s, bits, group) / s
            err = [
                (float(x[t] @ w[o]) - float(x[t] @ q[o])) ** 2
                for t in range(x.shape[0])
                for o in range(w.shape[0])
            ]
            total += sum(err) / len(err)
        if total < best[0] - 1e-12:
            best = (total, n / grid)
    return best[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_awq_search_equals_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 16, generator=g)
    x[:, 3] *= 20  # one salient input channel, as in LLMs' activation outliers
    weights = [torch.randn(5, 16, generator=g), torch.randn(3, 16, generator=g)]
    s, alpha, losses = quant.awq_search(x, weights, bits=3, group_size=8, grid=10)
    assert alpha == _brute_force_awq(x, weights, 3, 8, 10)
    assert losses[alpha] <= losses[0.0]  # never worse than RTN on the calibration data
    assert alpha > 0 and float(s[3]) == float(s.max())  # the salient channel is scaled up


def test_quantize_llm_rtn_and_awq(tiny, embeds):
    import copy

    model, _ = tiny
    calib = quant.calibration_inputs(model, lambda: kvcache.generate(model, embeds, 3), max_tokens=64)
    assert set(calib) == set(quant.llm_linears(model)) and all(len(v) == 64 for v in calib.values())
    rtn, awq = copy.deepcopy(model), copy.deepcopy(model)
    assert quant.quantize_llm(rtn, 4, 32) == {}
    alphas = quant.quantize_llm(awq, 4, 32, calib, grid=5)
    assert len(alphas) == 4 * len(model.model.language_model.layers)
    w = quant.llm_linears(model)["layers.0.mlp.up_proj"].weight
    w_rtn = quant.llm_linears(rtn)["layers.0.mlp.up_proj"].weight
    assert torch.allclose(w_rtn, quant.fake_quantize(w, 4, 32))
    with pytest.raises(ValueError, match="does not divide"):
        quant.quantize_llm(copy.deepcopy(model), 4, 48)
    assert quant.llm_weight_bytes(model, 4, 32) < quant.llm_weight_bytes(model) / 3


# --- batching -----------------------------------------------------------------------------------------------------


def test_simulate_static_vs_persistent():
    arrivals, lengths = [0.0, 0.0, 0.5, 0.5], [2, 10, 2, 2]
    step = lambda batch: 0.1  # noqa: E731
    static = batching.simulate(arrivals, lengths, 2, step, persistent=False)
    persistent = batching.simulate(arrivals, lengths, 2, step, persistent=True)
    # static: requests 0,1 run 10 steps together (0→1.0); 2,3 start at 1.0 and finish at 1.2
    assert static["finish"] == pytest.approx([1.0, 1.0, 1.2, 1.2])
    # persistent: 0 leaves at 0.2; 2 joins at 0.5, 3 when request 2 leaves
    assert persistent["finish"] == pytest.approx([0.2, 1.0, 0.7, 0.9])
    assert persistent["mean_latency"] < static["mean_latency"]


def test_measure_batches(tiny, embeds):
    model, _ = tiny
    rows = batching.measure_batches(model, embeds, [1, 3], new_tokens=3, repeats=1)
    assert [r["batch"] for r in rows] == [1, 3] and all(r["tokens_per_s"] > 0 for r in rows)
    for r in rows:  # two decode steps after the first token: prefill is not in the timing
        assert r["step_s"] == pytest.approx(r["seconds"] / 2) and r["tokens_per_s"] == pytest.approx(
            r["batch"] * 2 / r["seconds"]
        )
    with pytest.raises(ValueError, match="prompts"):
        batching.measure_batches(model, embeds, [4], new_tokens=2)
    with pytest.raises(ValueError, match="at least 2"):
        batching.measure_batches(model, embeds, [1], new_tokens=1)


def test_percentile_is_nearest_rank():
    assert batching.percentile([5.0, 1.0], 90) == 5.0  # of two, the p90 is the slower one, not the faster
    assert batching.percentile(list(range(1, 11)), 90) == 9
    assert batching.percentile(list(range(1, 101)), 90) == 90 and batching.percentile([3.0], 90) == 3.0


def test_zero_point_is_a_code_of_the_range():
    """A group whose weights are all positive (or all negative) would need a zero point outside 0..15; it is clamped,
    as AWQ's quantizer clamps it, and the round trip still returns every weight within the group's range."""
    w = torch.cat([torch.rand(4, 64) + 0.5, -torch.rand(4, 64) - 0.5])
    codes, scale, zero = quant.quantize_weight(w, 4, 64)
    assert zero.min() >= 0 and zero.max() <= 15 and codes.max() <= 15
    back = quant.dequantize_weight(codes, scale, zero)
    assert torch.isfinite(back).all()


# --- LMDeploy command lines ---------------------------------------------------------------------------------------


def test_auto_awq_runs_online_in_an_environment_with_datasets():
    """lmdeploy's calibration loads wikitext2 with `datasets` from the Hub (lmdeploy/lite/utils/calib_dataloader.py):
    the LMDeploy environment pins datasets, and auto_awq's environment drops the course's offline switches."""
    from pathlib import Path

    import yaml

    spec = yaml.safe_load((Path(__file__).parents[1] / "envs" / "lmdeploy.yml").read_text(encoding="utf-8"))
    pins = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    assert any(p.startswith("datasets==") for p in pins), pins
    kernel = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
              "HF_ENDPOINT": "https://mirror.example", "PATH": "/bin"}  # fmt: skip
    assert engines.auto_awq_env(kernel) == {"HF_ENDPOINT": "https://mirror.example", "PATH": "/bin"}


def test_lmdeploy_commands():
    model = "/root/share/new_models/OpenGVLab/InternVL2-2B"
    argv = engines.auto_awq_command(model, "/tmp/out")
    assert argv[:4] == ["lmdeploy", "lite", "auto_awq", model] and "--trust-remote-code" in argv
    assert "--search-scale" in argv and "--search-scale" not in engines.auto_awq_command(
        model, "/o", search_scale=False
    )
    assert (
        argv[argv.index("--w-group-size") + 1] == "128" and argv[argv.index("--work-dir") + 1] == "/tmp/out"
    )
    served = engines.api_server_plus_command(model, tp=2, model_format="awq", quant_policy=8,
                                             proxy_url="http://127.0.0.1:8000")  # fmt: skip
    for flag, value in [("--tp", "2"), ("--model-format", "awq"), ("--quant-policy", "8")]:
        assert served[served.index(flag) + 1] == value
    assert "--tp" not in engines.api_server_plus_command(model)
    assert engines.proxy_command()[:3] == ["lmdeploy", "serve", "proxy"]
    assert engines.xtuner_multi_gpu_command("cfg.py").startswith("NPROC_PER_NODE=2 xtuner train cfg.py")
