"""Full-stack check (not part of `make test`): course_utils.infer against the real lmdeploy of envs/lmdeploy.yml.

    make test-full-stack          # builds .venv-lmdeploy from the pins, then runs this file

On a CPU machine lmdeploy imports and builds its config objects, but `pipeline(...)` needs a GPU, so this checks
everything up to that call: our configs are real lmdeploy objects with the values we meant, and the pipeline and
Pipeline methods we call accept the arguments we pass.
"""

import inspect

import lmdeploy

from course_utils import infer


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
    _check_mini_refused()
    print("lmdeploy full-stack check: OK")


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


def _check_evaluate() -> None:
    """Notebook 08 runs `python -m course_utils.evaluate --backend lmdeploy` in this environment: the module imports
    here, and its input checks answer with one line and exit 2 before any model is loaded."""
    import subprocess
    import sys
    import tempfile

    from course_utils import evaluate, foodieqa, minifood

    assert "lmdeploy" in infer.BACKENDS
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
