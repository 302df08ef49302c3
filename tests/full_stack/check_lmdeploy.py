"""Full-stack check (not part of `make test`): course_utils.infer against the real lmdeploy of envs/lmdeploy.yml.

    make test-full-stack          # builds .venv-lmdeploy from the pins, then runs this file

On a CPU machine lmdeploy imports and builds its config objects, but `pipeline(...)` needs a GPU, so this checks
everything up to that call: our configs are real lmdeploy objects with the values we meant, and the pipeline and
Pipeline methods we call accept the arguments we pass.
"""

import argparse
import importlib.util
import inspect
import itertools
import pathlib

import lmdeploy

from course_utils import infer, serving

STANDIN = pathlib.Path(__file__).resolve().parents[1] / "rehearsal" / "standins" / "lmdeploy"


def main() -> None:
    print("lmdeploy", lmdeploy.__version__)
    tm = infer.lmdeploy_configs("turbomind", session_len=8192, cache_max_entry_count=0.2, tp=1)
    assert isinstance(tm, lmdeploy.TurbomindEngineConfig)
    assert (tm.session_len, tm.cache_max_entry_count, tm.tp) == (8192, 0.2, 1), tm
    pt = infer.lmdeploy_configs("pytorch", session_len=4096)
    assert isinstance(pt, lmdeploy.PytorchEngineConfig) and pt.session_len == 4096, pt

    greedy = infer.lmdeploy_gen_config(infer.GenConfig(max_new_tokens=64))
    assert (
        isinstance(greedy, lmdeploy.GenerationConfig)
        and greedy.do_sample is False
        and greedy.max_new_tokens == 64
    )
    sampled = infer.lmdeploy_gen_config(infer.GenConfig(top_p=0.8, temperature=0.8, seed=3))
    assert sampled.do_sample is True and sampled.top_p == 0.8 and sampled.temperature == 0.8, sampled
    assert sampled.random_seed == 3, sampled

    params = inspect.signature(lmdeploy.pipeline).parameters
    for name in ("backend_config",):
        assert name in params, f"lmdeploy.pipeline has no '{name}' parameter: {list(params)}"
    assert "trust_remote_code" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()), list(
        params
    )

    pipeline_cls = _find_pipeline_class()
    for method, args in (
        ("chat", ("prompt", "session", "gen_config")),
        ("stream_infer", ("prompts", "gen_config")),
    ):
        sig = inspect.signature(getattr(pipeline_cls, method))
        missing = [a for a in args if a not in sig.parameters]
        assert not missing, f"{pipeline_cls.__name__}.{method} lacks {missing}: {sig}"
    # LMDeployChat.stream yields each streamed Response's text as a new piece: in 0.18 stream_infer's Responses are
    # deltas, which Pipeline.chat itself joins with Response.extend (text concatenated)
    chat_src = inspect.getsource(pipeline_cls.chat)
    assert "resp.extend(out)" in chat_src, (
        "Pipeline.chat no longer joins streamed deltas with Response.extend"
    )
    joined = lmdeploy.messages.Response("你好", 1, 3).extend(lmdeploy.messages.Response("，世界", 2, 3))
    assert joined.text == "你好，世界", joined.text
    _check_demo()
    _check_evaluate()
    _check_engines_cli()
    _check_mini_refused()
    standin = _load_standin()
    _check_limits(standin)
    _check_engine_configs(standin)
    _check_api_server_flags(standin)
    _check_deploy_commands(standin)
    _check_client(standin)
    _check_enable_generate()
    _check_calibration_imports()
    print("lmdeploy full-stack check: OK")


def _check_calibration_imports() -> None:
    """`lmdeploy lite auto_awq` (notebook 09) imports datasets for its calibration texts: it imports here, with the
    names lmdeploy's loader uses."""
    from lmdeploy.lite.utils import calib_dataloader

    source = inspect.getsource(calib_dataloader.get_calib_loaders)
    assert "from datasets import VerificationMode, load_dataset" in source, source[:400]
    from datasets import VerificationMode, load_dataset  # noqa: F401

    print("calibration: datasets imports as lmdeploy's calib_dataloader needs")


def _check_mini_refused() -> None:
    """This environment's transformers is too old for the mini models: one clear ImportError naming the kernel."""
    from course_utils import env

    assert env.mini_problem() and "Python (mllm-course)" in env.mini_problem()
    try:
        import course_utils.mini  # noqa: F401
    except ImportError as err:
        assert "Python (mllm-course)" in str(err), err
    else:
        raise AssertionError("course_utils.mini imported under transformers 4.57")


def _check_engines_cli() -> None:
    """Notebook 09 runs `python -m course_utils.deploy.engines compare` in this environment: it imports here (with this
    transformers: no mini model needed), and refuses a folder that is not a model before starting any engine."""
    import subprocess
    import sys
    import tempfile

    from course_utils.deploy import engines

    help_ = subprocess.run([sys.executable, "-m", "course_utils.deploy.engines", "compare", "--help"],
                           capture_output=True, text=True)  # fmt: skip
    assert help_.returncode == 0 and "--awq" in help_.stdout, help_.stderr
    with tempfile.TemporaryDirectory() as tmp:
        assert engines.main(["compare", "--fp16", tmp, "--awq", tmp, "--out", f"{tmp}/t.json"]) == 2


def _check_evaluate() -> None:
    """Notebook 08 runs `python -m course_utils.evaluate --backend lmdeploy` in this environment: the module imports
    here, and its input checks answer with one line and exit 2 before any model is loaded."""
    import subprocess
    import sys
    import tempfile

    from course_utils import backends, evaluate, foodieqa, minifood

    assert "lmdeploy" in backends.BACKENDS
    help_ = subprocess.run(
        [sys.executable, "-m", "course_utils.evaluate", "--help"], capture_output=True, text=True
    )
    assert help_.returncode == 0 and "--backend" in help_.stdout, help_.stderr
    with tempfile.TemporaryDirectory() as tmp:
        items = minifood.make_minifood(f"{tmp}/photos", dishes=4, photos_per_dish=1)
        foodieqa.write_json(items, f"{tmp}/items.json")
        argv = [f"{tmp}/items.json", f"{tmp}/photos", "--backend", "lmdeploy", "--model", f"{tmp}/no-model"]
        assert evaluate.main(argv) == 2


def _check_demo() -> None:
    """The demo under this environment's gradio: build, serve on 127.0.0.1, one turn through gradio_client."""
    import tempfile

    from course_utils import data, demo

    class Echo:
        def chat(self, prompt, session=None, gen_config=None):
            text, image = infer.split_prompt(prompt)
            new = infer.Session([], image)
            new.response = infer.Response(f"{text} {image.size}", 1, 1, "stop")
            return new

    app = demo.build_app(Echo(), "lmdeploy")
    url = demo.serve(app)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/photo.png"
            data.sample_photo("coffee").save(path)
            text = demo.ask(url, "what is it?", path)
        assert text == "what is it? (600, 400)", text
    finally:
        app.close()


def _load_standin():
    """The rehearsal's stand-in ``lmdeploy`` package, imported as ``lmdeploy_standin`` beside the real one."""
    spec = importlib.util.spec_from_file_location(
        "lmdeploy_standin", STANDIN / "__init__.py", submodule_search_locations=[str(STANDIN)]
    )
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules["lmdeploy_standin"] = module
    spec.loader.exec_module(module)
    assert module.__version__ == lmdeploy.__version__, (module.__version__, lmdeploy.__version__)
    return module


def _accepts(make, **kwargs) -> bool:
    try:
        make(**kwargs)
    except Exception:  # AssertionError, pydantic's ValidationError, ValueError
        return False
    return True


def _check_limits(standin) -> None:
    """infer.GenConfig and the stand-in's GenerationConfig accept and refuse exactly what lmdeploy's does."""
    values = {
        "temperature": [-0.5, -0.01, 0.0, 0.7, 1.3, 2.0, 2.01, 3.0],
        "top_p": [-0.1, 0.0, 0.5, 1.0, 1.01],
        "top_k": [-1, 0, 1, 50],
        "min_p": [-0.1, 0.0, 0.5, 1.0, 1.1],
    }
    for name, vals in values.items():
        for v in vals:
            real = _accepts(lmdeploy.GenerationConfig, **{name: v})
            ours = _accepts(infer.GenConfig, **{name: v})
            stand = _accepts(standin.GenerationConfig, **{name: v})
            assert real == ours == stand, f"{name}={v}: lmdeploy {real}, GenConfig {ours}, stand-in {stand}"
            if ours:  # what GenConfig passes on is accepted too
                lmdeploy_gen = infer.lmdeploy_gen_config(infer.GenConfig(**{name: v}))
                assert isinstance(lmdeploy_gen, lmdeploy.GenerationConfig), lmdeploy_gen
    for n in (0, 1, 2, 1.0):
        assert _accepts(lmdeploy.GenerationConfig, n=n) == _accepts(standin.GenerationConfig, n=n), n
    for name, value in [("temperature", 3.0), ("top_p", 1.5), ("top_k", -1), ("min_p", 2.0)]:
        try:
            infer.GenConfig(**{name: value})
        except ValueError as err:
            assert name in str(err) and str(value) in str(err), err
        else:
            raise AssertionError(f"GenConfig accepted {name}={value}, which lmdeploy refuses")
    print(
        "GenerationConfig limits: GenConfig and the stand-in match lmdeploy on",
        sum(map(len, values.values())),
        "values",
    )


def _check_engine_configs(standin) -> None:
    """The stand-in's engine configs accept and refuse what lmdeploy's do, for the fields the course sets."""
    matrix = {
        "dtype": ["auto", "float16", "bfloat16", "float32"],
        "tp": [0, 1, 2],
        "session_len": [None, 4096, 8192],
        "cache_max_entry_count": [0.0, 0.2, 0.5, 0.99, 1.0, 1.5],
        "quant_policy": [0, 3, 4, 8, 16, 42],
    }
    cases = 0
    for cls in ("TurbomindEngineConfig", "PytorchEngineConfig"):
        real, stand = getattr(lmdeploy, cls), getattr(standin, cls)
        for name, vals in matrix.items():
            for v in vals:
                assert _accepts(real, **{name: v}) == _accepts(stand, **{name: v}), f"{cls}({name}={v})"
                cases += 1
        for tp, cache in itertools.product([1, 2], [0.2, 1.0]):
            kw = {"tp": tp, "cache_max_entry_count": cache, "session_len": 8192}
            assert _accepts(real, **kw) == _accepts(stand, **kw), f"{cls}({kw})"
    print(f"engine configs: the stand-in matches lmdeploy on {cases} values")


def _real_cli():
    from lmdeploy.cli.cli import CLI
    from lmdeploy.cli.lite import SubCliLite
    from lmdeploy.cli.serve import SubCliServe

    if not CLI.subparsers.choices.get("serve") or "api_server" not in SubCliServe.subparsers.choices:
        CLI.add_parsers()  # what lmdeploy's cli/entrypoint.py run() does before parse_args
        SubCliServe.add_parsers()
        SubCliLite.add_parsers()
    return CLI.parser


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _check_api_server_flags(standin) -> None:
    """serving.api_server_command parses with lmdeploy's real CLI parser to the values we meant; the stand-in's
    api_server flags are a subset of the real ones, with the same types, defaults and choices."""
    parser = _real_cli()
    model = "/root/share/new_models/OpenGVLab/InternVL2-2B"
    for python in (None, "/envs/lmdeploy/bin/python"):
        argv = serving.api_server_command(
            model, port=23334, session_len=4096, cache_max_entry_count=0.2, python=python
        )
        head = 1 if python is None else 3
        assert argv[:head] == (["lmdeploy"] if python is None else [python, "-m", "lmdeploy"]), argv
        args = parser.parse_args(argv[head:])
        got = (args.model_path, args.server_name, args.server_port, args.model_name, args.trust_remote_code,
               args.session_len, args.cache_max_entry_count, args.backend)  # fmt: skip
        assert got == (model, "127.0.0.1", 23334, "InternVL2-2B", True, 4096, 0.2, "turbomind"), got
        assert args.run.__name__ == "api_server", args.run
    real = _subparser(parser, "serve", "api_server")._option_string_actions
    cli = importlib.import_module("lmdeploy_standin.cli")
    ours = _subparser(cli.build_parser(), "serve", "api_server")._option_string_actions
    extra = sorted(set(ours) - set(real))
    assert not extra, f"the stand-in's api_server has flags lmdeploy's does not: {extra}"
    _same_flags(ours, real)
    print(
        f"api_server: our argv parses with lmdeploy's parser; the stand-in's {len(ours) - 2} flags are lmdeploy's"
    )


def _same_flags(ours: dict, real: dict) -> None:
    """Every flag of the stand-in exists in lmdeploy's parser with the same action, type, default, choices, nargs; a
    type that is a parsing function (``--quant-policy``) must accept and refuse the same strings."""
    for flag, action in ours.items():
        if flag.startswith("--") and flag != "--help":
            assert flag in real, f"lmdeploy has no {flag}"
            r = real[flag]
            same = (type(action), action.default, action.choices, action.nargs)
            assert same == (type(r), r.default, r.choices, r.nargs), (flag, same, r)
            if isinstance(r.type, type) or r.type is None:
                assert action.type is r.type, (flag, action.type, r.type)
            else:
                for text in ["0", "4", "8", "16", "42", "3", "int8", "INT4", "none", "fp8", "bogus"]:
                    assert _accepts(lambda t=text, f=r.type: f(t)) == _accepts(
                        lambda t=text, f=action.type: f(t)
                    ), (
                        flag,
                        text,
                    )
                    if _accepts(lambda t=text, f=r.type: f(t)):
                        assert int(r.type(text)) == action.type(text), (flag, text)


def _check_deploy_commands(standin) -> None:
    """Every lmdeploy command line notebook 09 prints (course_utils.deploy.engines) parses with lmdeploy's real CLI
    to the values meant; the stand-in's `lite auto_awq` flags are lmdeploy's; infer.lmdeploy_configs builds real ones."""
    from course_utils.deploy import engines

    parser = _real_cli()
    model, out = "/root/share/new_models/OpenGVLab/InternVL2-2B", "/root/work/09_internvl2_2b_w4a16"
    for python in (None, "/envs/lmdeploy/bin/python"):
        head = 1 if python is None else 3
        args = parser.parse_args(engines.auto_awq_command(model, out, python=python)[head:])
        got = (args.model, args.work_dir, args.w_bits, args.w_group_size, args.calib_samples, args.calib_seqlen,
               args.trust_remote_code, args.search_scale, args.run.__name__)  # fmt: skip
        assert got == (model, out, 4, 128, 128, 2048, True, True, "auto_awq"), got
        plain = parser.parse_args(
            engines.auto_awq_command(model, out, search_scale=False, python=python)[head:]
        )
        assert plain.search_scale is False  # lmdeploy's default: no search, a fixed 0.5 smoothing
        argv = engines.api_server_plus_command(out, model_format="awq", quant_policy=8, port=23335,
                                               cache_max_entry_count=0.2, python=python)  # fmt: skip
        args = parser.parse_args(argv[head:])
        got = (args.model_path, args.model_format, args.quant_policy, args.server_port, args.cache_max_entry_count,
               args.trust_remote_code, args.run.__name__)  # fmt: skip
        assert got == (out, "awq", 8, 23335, 0.2, True, "api_server"), got
    args = parser.parse_args(engines.api_server_plus_command(model, tp=2)[1:])
    assert args.tp == 2 and args.proxy_url is None, args
    args = parser.parse_args(
        engines.api_server_plus_command(model, port=23334, proxy_url="http://127.0.0.1:8000")[1:]
    )
    assert (args.server_port, args.proxy_url) == (23334, "http://127.0.0.1:8000"), args
    args = parser.parse_args(engines.proxy_command(port=8000)[1:])
    got = (args.server_name, args.server_port, args.routing_strategy, args.run.__name__)
    assert got == ("127.0.0.1", 8000, "min_expected_latency", "proxy"), got
    real = _subparser(parser, "lite", "auto_awq")._option_string_actions
    cli = importlib.import_module("lmdeploy_standin.cli")
    ours = _subparser(cli.build_parser(), "lite", "auto_awq")._option_string_actions
    _same_flags(ours, real)
    for engine, cls in (
        ("turbomind", lmdeploy.TurbomindEngineConfig),
        ("pytorch", lmdeploy.PytorchEngineConfig),
    ):
        config = infer.lmdeploy_configs(engine, model_format="awq", quant_policy=8, cache_max_entry_count=0.2)
        assert isinstance(config, cls) and config.model_format == "awq" and config.quant_policy == 8, config
        for policy in (0, 4, 8, 3):
            real_ok = _accepts(cls, quant_policy=policy, model_format="awq")
            stand_ok = _accepts(getattr(standin, cls.__name__), quant_policy=policy, model_format="awq")
            assert real_ok == stand_ok, (cls.__name__, policy)
    print(
        "notebook 09: auto_awq, api_server (awq, quant_policy, tp, proxy-url) and proxy commands parse with lmdeploy's CLI"
    )


def _check_client(standin) -> None:
    """ask_api_server through the openai package of this environment against an OpenAI-compatible stand-in."""
    import socket

    import openai

    from course_utils import data

    assert serving._openai() is openai
    server_mod = importlib.import_module("lmdeploy_standin.openai_server")
    server = server_mod.make_server(["InternVL2-2B"], lambda messages, body: ("a cup", "stop", 10, 2))
    url = server_mod.serve_in_background(server)
    try:
        image = data.sample_photo("coffee")
        assert serving.ask_api_server("what is it?", image, base_url=url) == "a cup"
        try:
            serving.ask_api_server("what is it?", image, base_url=url, model="internvl2")
        except serving.ApiServerError as err:
            assert err.status == 404 and "does not exist" in str(err), err
        else:
            raise AssertionError("no 404 for a model the server does not serve")
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        serving.ask_api_server("hi", base_url=f"http://127.0.0.1:{port}")
    except ConnectionRefusedError as err:
        assert "no server on" in str(err), err
    else:
        raise AssertionError("no ConnectionRefusedError without a server")
    print("ask_api_server: openai", openai.__version__, "client: answer, 404 and no-server cases as expected")


def _check_enable_generate() -> None:
    """Under this environment's transformers, enable_generate makes a remote-code-shaped LM generate, with the
    legacy tuple KV cache InternLM2's remote code reads (``past_key_values[0][0].shape[2]``)."""
    import torch
    import transformers
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class Config(PretrainedConfig):
        model_type = "course_legacy_lm"

        def __init__(self, vocab_size=13, hidden_size=8, **kwargs):
            self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, 1
            super().__init__(**kwargs)

    class LegacyLM(PreTrainedModel):  # like InternLM2ForCausalLM: no GenerationMixin, tuple caches
        config_class = Config

        def __init__(self, config):
            super().__init__(config)
            self.emb, self.out = nn.Embedding(13, 8), nn.Linear(8, 13)
            self.post_init()

        def forward(
            self, input_ids=None, past_key_values=None, attention_mask=None, use_cache=None, **kwargs
        ):
            past = 0 if past_key_values is None else past_key_values[0][0].shape[2]
            h = self.emb(input_ids)
            cache = ((torch.zeros(1, 1, past + input_ids.shape[1], 1),) * 2,)
            return CausalLMOutputWithPast(logits=self.out(h), past_key_values=cache)

        def prepare_inputs_for_generation(
            self, input_ids, past_key_values=None, attention_mask=None, **kwargs
        ):
            if past_key_values is not None:
                input_ids = input_ids[:, past_key_values[0][0].shape[2] :]
            return {
                "input_ids": input_ids,
                "past_key_values": past_key_values,
                "attention_mask": attention_mask,
            }

    class Chat(nn.Module):
        def __init__(self):
            super().__init__()
            self.language_model = LegacyLM(Config())

    model = Chat()
    assert not hasattr(model.language_model, "generate"), transformers.__version__
    infer.enable_generate(infer.enable_generate(model))
    out = model.language_model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 7), out
    print("enable_generate: a remote-code-shaped LM generates with transformers", transformers.__version__)


def _find_pipeline_class():
    for path in ("lmdeploy.pipeline", "lmdeploy.serve.async_engine"):
        module = __import__(path, fromlist=["*"])
        for name in ("Pipeline", "AsyncEngine"):
            cls = getattr(module, name, None)
            if inspect.isclass(cls) and hasattr(cls, "chat"):
                return cls
    raise AssertionError("no lmdeploy class with a .chat method found (Pipeline / AsyncEngine)")


if __name__ == "__main__":
    main()
