"""LMDeploy's own implementation of notebook 09's techniques (full track, GPU; lmdeploy 0.18 flag names).

``auto_awq_command`` writes ``lmdeploy lite auto_awq`` (AWQ, W4A16: 4-bit weights in groups of 128, activations in
fp16); ``infer.LMDeployChat(folder, model_format='awq', quant_policy=8)`` loads such a folder and quantizes the KV
cache (``quant_policy`` 8 = int8, 4 = int4); ``concurrency_benchmark`` sends 1 → N simultaneous requests to an OpenAI-compatible server;
``proxy_command`` and ``xtuner_multi_gpu_command`` are what notebook 09 shows for more than one GPU. Every command is
parsed by lmdeploy's real CLI in ``tests/full_stack/check_lmdeploy.py``.

Notebook 09 runs in the course kernel on both tracks (its mini part needs the course's transformers), so the
in-process LMDeploy comparison runs in the LMDeploy environment as a program, as notebook 08 runs its evaluation:

    <lmdeploy env>/bin/python -m course_utils.deploy.engines compare --fp16 MODEL --awq W4A16_DIR --out table.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import infer, serving


def _head(python: str | None) -> list[str]:
    return ["lmdeploy"] if python is None else [python, "-m", "lmdeploy"]


def auto_awq_command(model_dir, work_dir, *, w_bits: int = 4, w_group_size: int = 128, calib_samples: int = 128,
                     calib_seqlen: int = 2048, search_scale: bool = True, python: str | None = None) -> list[str]:  # fmt: skip
    """``lmdeploy lite auto_awq MODEL --work-dir OUT ...``: AWQ-quantize the LLM's linear layers to ``w_bits`` in
    groups of ``w_group_size`` using ``calib_samples`` calibration texts of ``calib_seqlen`` tokens (lmdeploy's default
    calibration set, wikitext2, is downloaded from the Hugging Face Hub on first use).

    ``search_scale``: ``--search-scale``, AWQ's search for the scaling exponent (notebook 09's ``quant.awq_search``).
    Without it lmdeploy 0.18 does not search: it smooths with a fixed exponent of 0.5 on the activations' absolute
    maxima (``lmdeploy/lite/apis/auto_awq.py``, ``search_scale=False`` by default)."""
    return _head(python) + ["lite", "auto_awq", str(model_dir), "--work-dir", str(work_dir),
                            "--w-bits", str(w_bits), "--w-group-size", str(w_group_size),
                            "--calib-samples", str(calib_samples), "--calib-seqlen", str(calib_seqlen),
                            "--trust-remote-code"] + (["--search-scale"] if search_scale else [])  # fmt: skip


# what course_utils.env.init sets so that nothing downloads while the notebooks run
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def auto_awq_env(environ=None) -> dict[str, str]:
    """The environment for ``auto_awq_command``: the course kernel's (``environ``, default ``os.environ``) without the
    offline switches, because lmdeploy loads its calibration texts with ``datasets.load_dataset`` from the Hugging Face
    Hub (``lmdeploy/lite/utils/calib_dataloader.py``; wikitext2 by default) and fails offline. ``HF_ENDPOINT`` (a
    mirror, where huggingface.co cannot be reached) passes through."""
    environ = dict(os.environ if environ is None else environ)
    return {k: v for k, v in environ.items() if k not in OFFLINE_SWITCHES}


def gpu_memory_free_gb() -> float | None:
    """GPU memory free on device 0, or None without CUDA."""
    import torch

    return torch.cuda.mem_get_info()[0] / 1e9 if torch.cuda.is_available() else None


def weights_on_disk_gb(folder) -> float:
    """The size of a model folder's weight files (safetensors, else .bin): what its weights take in GPU memory."""
    files = sorted(Path(folder).glob("*.safetensors")) or sorted(Path(folder).glob("*.bin"))
    return sum(f.stat().st_size for f in files) / 1e9


def gpu_memory_used_gb() -> float | None:
    """GPU memory in use on device 0 by every process (TurboMind allocates outside PyTorch), or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 1e9


def concurrency_benchmark(base_url: str, prompt: tuple, levels: list[int], requests_per_level: int | None = None,
                          max_tokens: int = 64) -> list[dict[str, float]]:  # fmt: skip
    """For each concurrency level c: ``requests_per_level`` (default the larger of 20 and 2·c, so that a p90 is not
    the slowest of two) requests, c at a time, to ``base_url`` (``serving.ask_api_server``, the openai client where
    installed) → requests/s, answer words/s, mean and p90 (nearest rank) latency."""
    from .batching import percentile

    text, image = prompt
    rows = []
    for c in levels:
        n = requests_per_level or max(20, 2 * c)

        def one(_):
            start = time.perf_counter()
            answer = serving.ask_api_server(text, image, base_url=base_url, max_tokens=max_tokens)
            return time.perf_counter() - start, len(answer.split())

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=c) as pool:
            results = list(pool.map(one, range(n)))
        wall = time.perf_counter() - start
        latency = sorted(r[0] for r in results)
        rows.append({"concurrency": c, "requests": n, "requests_per_s": n / wall,
                     "words_per_s": sum(r[1] for r in results) / wall, "mean_latency_s": sum(latency) / n,
                     "p90_latency_s": percentile(latency, 90)})  # fmt: skip
    return rows


def api_server_plus_command(model_dir, *, tp: int = 1, model_format: str | None = None, quant_policy: int = 0,
                            proxy_url: str | None = None, **kwargs) -> list[str]:  # fmt: skip
    """``serving.api_server_command`` (``kwargs``: port, session_len, cache_max_entry_count, python) plus
    ``--tp`` (tensor parallelism over that many GPUs), ``--model-format awq``, ``--quant-policy`` and
    ``--proxy-url`` (register with a ``lmdeploy serve proxy``), each only when set."""
    argv = serving.api_server_command(model_dir, **kwargs)
    argv += ["--tp", str(tp)] if tp != 1 else []
    argv += ["--model-format", model_format] if model_format else []
    argv += ["--quant-policy", str(quant_policy)] if quant_policy else []
    return argv + (["--proxy-url", proxy_url] if proxy_url else [])


def proxy_command(*, port: int = 8000, routing_strategy: str = "min_expected_latency",
                  python: str | None = None) -> list[str]:  # fmt: skip
    """``lmdeploy serve proxy``: one address in front of several api_servers, each request routed to one of them."""
    return _head(python) + ["serve", "proxy", "--server-name", "127.0.0.1", "--server-port", str(port),
                            "--routing-strategy", routing_strategy]  # fmt: skip


def xtuner_multi_gpu_command(config, gpus: int = 2, deepspeed: str = "deepspeed_zero2") -> str:
    """XTuner training on ``gpus`` GPUs of one machine: ``NPROC_PER_NODE`` makes ``xtuner train`` launch one process
    per GPU (xtuner's entry_point.py), DeepSpeed ZeRO-2 shards optimizer states and gradients across them."""
    return f"NPROC_PER_NODE={gpus} xtuner train {config} --deepspeed {deepspeed}"


PHOTOS = (
    "coffee",
    "chelsea",
    "astronaut",
)  # photos shipped with scikit-image (course_utils.data.sample_photo)
QUESTION = "What is in this picture? Answer in one sentence."


def compare(
    setups: dict, photos: list, *, max_new_tokens: int = 64, cache_max_entry_count: float = 0.2
) -> dict:
    """For each ``name: (model folder, engine options)``: GPU memory free before the engine starts and in use once it is
    up, the size of its weights, generated tokens/s on ``photos`` in one batch, and the answers. One engine at a time
    (each is closed before the next starts). The cache's capacity in tokens follows from the free memory, the weights
    and the cache type (notebook 09, ``kvcache.kv_budget``): GPU memory in use cannot show KV int8's saving, since
    ``cache_max_entry_count`` takes the same share of the free memory whatever the cache's type."""
    table = {}
    for name, (folder, options) in setups.items():
        free = gpu_memory_free_gb()
        chat = infer.LMDeployChat(folder, cache_max_entry_count=cache_max_entry_count, **options)
        memory = gpu_memory_used_gb()
        start = time.perf_counter()
        responses = chat.batch(photos, gen_config=infer.GenConfig(max_new_tokens=max_new_tokens))
        seconds = time.perf_counter() - start
        table[name] = {"gpu_memory_gb": memory, "gpu_free_before_gb": free, "weights_gb": weights_on_disk_gb(folder),
                       "quant_policy": options.get("quant_policy", 0),
                       "tokens_per_s": sum(r.generate_token_len for r in responses) / seconds,
                       "answers": [r.text for r in responses]}  # fmt: skip
        chat.pipe.close()
        del chat
        gc.collect()
    return table


def main(argv: list[str] | None = None) -> int:
    """``compare --fp16 MODEL --awq W4A16_DIR --out FILE``: fp16 / W4A16 / W4A16 + KV int8 on the course photos."""
    from .. import data

    parser = argparse.ArgumentParser(prog="python -m course_utils.deploy.engines", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--fp16", required=True, help="the original model folder")
    c.add_argument("--awq", required=True, help="the folder `lmdeploy lite auto_awq` wrote")
    c.add_argument("--out", required=True, help="where to write the table (JSON)")
    c.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    for folder in (args.fp16, args.awq):
        if not (Path(folder) / "config.json").is_file():
            print(f"error: {folder}: no config.json (not a model folder)", file=sys.stderr)
            return 2
    photos = [(QUESTION, data.sample_photo(name)) for name in PHOTOS]
    setups = {"fp16": (args.fp16, {}), "W4A16": (args.awq, {"model_format": "awq"}),
              "W4A16 + KV int8": (args.awq, {"model_format": "awq", "quant_policy": 8})}  # fmt: skip
    table = compare(setups, photos, max_new_tokens=args.max_new_tokens)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(table, f, ensure_ascii=False, indent=1)
    os.replace(tmp, out)  # all or nothing
    return 0


if __name__ == "__main__":
    sys.exit(main())
