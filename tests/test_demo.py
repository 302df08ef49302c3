"""The Gradio demo: callbacks, gallery and sampling (fast), then the real app with the trained mini InternVL through
gradio_client (10 concurrent sessions × 5 turns) and a headless Chromium driven by Playwright.

Photo folders that must be served live outside both the working directory and the temp dir, as a learner's
``~/.cache/mllm-course`` and InternStudio's ``/root/share`` do: Gradio serves any file from those two without asking."""

import shutil
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from course_utils import data, demo, env, infer

gr = pytest.importorskip("gradio")


@contextmanager
def outside_folder():
    """A fresh folder outside the working directory and the temp dir (deleted afterwards)."""
    served_anyway = [Path.cwd().resolve(), Path(tempfile.gettempdir()).resolve()]
    for parent in (Path.home() / ".cache", Path("/var/tmp")):
        folder = parent / f"mllm-course-test-photos-{uuid.uuid4().hex[:8]}"
        if any(folder.resolve().is_relative_to(p) for p in served_anyway):
            continue
        try:
            folder.mkdir(parents=True)
        except OSError:
            continue
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    pytest.skip(f"no writable folder outside {served_anyway} (~/.cache and /var/tmp are inside)")


def save_photos(folder, items, names):
    """``items``' images as PNG files ``folder/<name>.png``; returns the paths."""
    paths = [folder / f"{name}.png" for name in names]
    for item, path in zip(items, paths, strict=True):
        item.image.save(path)
    return paths


def status(url):
    """The HTTP status of a GET of ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


class EchoEngine:
    """Answers with the question and the centre pixel of the session's image: shows what really reached the model."""

    def __init__(self):
        self.calls = []

    def chat(self, prompt, session=None, gen_config=None):
        self.calls.append((prompt, session, gen_config))
        text, image = infer.split_prompt(prompt)
        new = infer.Session(list(session.history) if session else [], session.image if session else image)
        pixel = new.image.getpixel((new.image.width // 2, new.image.height // 2)) if new.image else None
        new.response = infer.Response(f"{text} {pixel}", 1, 1, "stop")
        new.history.append((text, new.response.text))
        return new


def test_first_turn_sends_the_image_and_later_turns_reuse_the_session():
    engine = EchoEngine()
    h = demo.ChatHandlers(engine)
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    cleared, session, history = h.respond("what colour?", red, None, [])
    assert cleared == "" and engine.calls[0][0] == ("what colour?", red) and engine.calls[0][1] is None
    assert history[-1] == {"role": "assistant", "content": "what colour? (255, 0, 0)"}
    _, session2, history = h.respond("and now?", red, session, history)
    assert engine.calls[1][0] == "and now?" and engine.calls[1][1] is session  # text only, same conversation
    assert len(history) == 4 and len(session2.history) == 2
    assert demo.ChatHandlers.new_chat() == (None, [])


@pytest.mark.parametrize(
    ("text", "image", "message"), [("  ", "img", "Type a question"), ("hi", None, "Pick a photo")]
)
def test_bad_input_gets_a_message_a_learner_can_act_on(text, image, message):
    h = demo.ChatHandlers(EchoEngine())
    img = Image.new("RGB", (4, 4)) if image else None
    with pytest.raises(ValueError, match=message):
        h.respond(text, img, None, [])


class LayoutEngine(EchoEngine):
    """An EchoEngine whose ``chat`` takes ``image_first`` as ``infer``'s engines do."""

    def chat(self, prompt, session=None, gen_config=None, **layout):
        self.calls.append(layout)
        return super().chat(prompt, session, gen_config)


@pytest.mark.parametrize("image_first", [None, True, False])
def test_image_first_reaches_the_engine_on_the_first_turn(image_first):
    engine = LayoutEngine()
    h = demo.ChatHandlers(engine, image_first=image_first)
    _, session, history = h.respond("what?", Image.new("RGB", (4, 4)), None, [])
    h.respond("and?", None, session, history)
    layouts = [c for c in engine.calls if isinstance(c, dict)]
    first = {} if image_first is None else {"image_first": image_first}  # None: the engine's own default
    assert layouts == [first, {}]  # later turns keep the session's layout


class FailingEngine:
    """lmdeploy's failed request: finish_reason "error" and empty text (or, as LMDeployChat does, a RuntimeError)."""

    def __init__(self, raises=False):
        self.raises = raises

    def chat(self, prompt, session=None, gen_config=None):
        if self.raises:
            raise RuntimeError(
                "lmdeploy could not answer: finish_reason 'error', error_code 'context_length_exceeded'"
            )
        new = infer.Session([*(session.history if session else []), (infer.split_prompt(prompt)[0], "")])
        new.response = infer.Response("", 9000, 0, "error")
        new.response.error_code, new.response.error_message = "context_length_exceeded", "input too long"
        return new


@pytest.mark.parametrize("raises", [False, True])
def test_an_engine_error_shows_in_the_chat_instead_of_an_empty_answer(raises, capsys):
    h = demo.ChatHandlers(FailingEngine(raises))
    cleared, session, history = h.respond("what dish?", Image.new("RGB", (4, 4)), None, [])
    assert cleared == "" and session is None  # nothing to continue: the next question sends the image again
    assert history[0] == {"role": "user", "content": "what dish?"}
    reply = history[1]["content"]
    assert (
        history[1]["role"] == "assistant"
        and reply.startswith("⚠️ No answer")
        and "context_length_exceeded" in reply
    )
    assert "no answer" in capsys.readouterr().err  # and the terminal says it too
    ok = EchoEngine().chat(("q", Image.new("RGB", (4, 4))))
    _, kept, history = h.respond("again?", None, ok, [])
    assert kept is ok and "New chat" in history[-1]["content"]  # a failed later turn keeps the conversation


def test_sampling_sliders_stay_inside_lmdeploys_limits():
    app = demo.build_app(EchoEngine(), "mini")
    sliders = {b.elem_id: b for b in app.blocks.values() if isinstance(b, gr.Slider)}
    for name, elem_id in (("temperature", "temperature"), ("top_p", "top-p")):
        low, high = infer.LIMITS[name]  # lmdeploy 0.18's GenerationConfig asserts
        assert low <= sliders[elem_id].minimum < sliders[elem_id].maximum <= high
    t, p = (sliders["temperature"], sliders["top-p"])
    for temperature in (t.minimum, t.step, (t.minimum + t.maximum) / 2, t.maximum):
        for top_p in (p.minimum, p.maximum):
            cfg = demo.gen_config(temperature, top_p)  # GenConfig refuses what lmdeploy refuses
            assert cfg.do_sample == (temperature > 0)


def test_temperature_zero_is_greedy_and_above_zero_samples():
    assert not demo.gen_config(0.0, 0.8).do_sample
    cfg = demo.gen_config(0.7, 0.9)
    assert (
        cfg.do_sample
        and cfg.generate_kwargs()["top_p"] == 0.9
        and cfg.generate_kwargs()["temperature"] == 0.7
    )


def test_quick_pick_uses_shapes_for_mini_and_foodieqa_photos_when_present(clean_env, monkeypatch):
    assert len(demo.quick_pick("mini")) == 8
    fallback = demo.quick_pick("lmdeploy")  # no dataset: the bundled photos
    assert [label for _, label in fallback] == data.sample_photo_names()[: len(fallback)]
    root = clean_env / "foodie" / "images"
    root.mkdir(parents=True)
    for name in ("b_dish", "a_dish"):
        Image.new("RGB", (4, 4)).save(root / f"{name}.jpg")
    monkeypatch.setenv("MLLM_COURSE_FOODIEQA_DIR", str(clean_env / "foodie"))
    assert [label for _, label in demo.quick_pick("lmdeploy")] == ["a_dish", "b_dish"]


def test_quick_pick_from_your_own_photo_folder_spreads_over_dishes(tmp_path):
    for dish, n in (("dumplings", 3), ("noodles", 2), ("tofu", 1)):
        (tmp_path / dish).mkdir()
        for k in range(n):
            Image.new("RGB", (4, 4)).save(tmp_path / dish / f"{k}.png")
    picks = demo.quick_pick("mini", limit=4, photos=tmp_path)
    assert [label for _, label in picks] == ["dumplings", "noodles", "tofu", "dumplings"]
    assert all(Path(path).is_file() for path, _ in picks)
    with pytest.raises(FileNotFoundError, match="no photos"):
        demo.quick_pick("mini", photos=tmp_path / "tofu" / "empty")


def test_serve_and_ask_one_turn_from_a_program(tmp_path):
    from gradio_client import Client, handle_file

    engine = EchoEngine()
    app = demo.build_app(engine, "mini")
    url = demo.serve(app)
    try:
        Image.new("RGB", (8, 8), (0, 128, 255)).save(tmp_path / "blue.png")
        assert demo.ask(url, "what colour?", tmp_path / "blue.png") == "what colour? (0, 128, 255)"
        calls = len(engine.calls)
        for temperature, top_p in ((1.9, 0.8), (-0.5, 0.8), (0.7, 0.0), (0.7, 1.5)):  # outside the sliders
            with pytest.raises(Exception):  # noqa: B017 (Gradio refuses it; the client raises AppError)
                Client(url, verbose=False).predict(
                    "q", handle_file(str(tmp_path / "blue.png")), [], temperature, top_p, api_name="/chat"
                )
        assert len(engine.calls) == calls  # refused before reaching the engine
    finally:
        app.close()
    assert demo.reply_text([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "ab"


def test_only_the_offered_photos_are_served():
    """Gradio serves the quick-pick photo files the app shows, one by one, and nothing else from their folder."""
    with outside_folder() as folder:
        photos = save_photos(folder, data.make_shapes(9, image_size=32, seed=5), [f"p{i}" for i in range(9)])
        app = demo.build_app(EchoEngine(), "mini", photos=folder)  # the quick-pick bar shows 8 of the 9
        offered, kept_back = [str(p) for p in photos[:8]], str(photos[8])
        assert app.quick_pick_files == offered
        url = demo.serve(app)
        try:
            assert app.allowed_paths == offered
            code = {p: status(f"{url}gradio_api/file={p}") for p in [*offered, kept_back]}
            assert code == {**dict.fromkeys(offered, 200), kept_back: 403}
        finally:
            app.close()
    shapes = demo.build_app(EchoEngine(), "mini")  # PIL quick picks: no file to allow
    assert shapes.quick_pick_files == []


def test_cli_allows_its_photos_and_passes_the_image_layout(monkeypatch):
    launched, built = {}, {}
    real_build_app = demo.build_app

    def spy_build_app(*args, **kwargs):
        built.update(kwargs)
        return real_build_app(*args, **kwargs)

    monkeypatch.setattr(demo, "make_engine", lambda backend, model=None: EchoEngine())
    monkeypatch.setattr(demo, "build_app", spy_build_app)
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    with outside_folder() as folder:
        photo = save_photos(folder, data.make_shapes(1, image_size=32, seed=3), ["dish"])[0]
        demo.main(["--backend", "mini", "--photos", str(folder), "--no-image-first"])
    assert launched["allowed_paths"] == [str(photo)] and launched["server_name"] == "127.0.0.1"
    assert built["image_first"] is False
    demo.main(["--backend", "mini"])
    assert launched["allowed_paths"] is None and built["image_first"] is None  # the engine's default


def test_cli_refuses_an_unknown_backend():
    with pytest.raises(SystemExit):
        demo.main(["--backend", "vllm"])
    with pytest.raises(ValueError, match="unknown backend"):
        demo.make_engine("vllm")


# --------------------------------------------------------------------------------------------------------------
# The real app, with the trained mini InternVL (trained once per CI run into the run's cache, then reused).
# --------------------------------------------------------------------------------------------------------------
QUESTIONS = ["what colour is the shape?", "what shape is it?", "is the shape big or small?", "describe the image.",
             "what colour is the shape?"]  # fmt: skip


@pytest.fixture(scope="module")
def served():
    """The trained mini InternVL in the demo, its quick picks read from a folder outside the working directory and
    the temp dir (as ``~/.cache/mllm-course`` or ``/root/share`` for a learner): (engine, url, picks)."""
    from course_utils.mini import load_mini_internvl

    engine = infer.TransformersChat(*load_mini_internvl(progress=False))
    items = data.make_shapes(8, image_size=96, seed=2024)
    with outside_folder() as folder:
        save_photos(folder, items, [f"{i} {it.caption}" for i, it in enumerate(items)])
        app = demo.build_app(engine, "mini", photos=folder)
        picks = demo.quick_pick("mini", photos=folder)
        try:
            yield engine, demo.serve(app), picks
        finally:
            app.close()


def _expected(engine, image):
    """The conversation the engine itself produces for ``image`` and QUESTIONS (greedy, deterministic)."""
    session, answers = None, []
    for n, q in enumerate(QUESTIONS):
        session = engine.chat((q, image) if n == 0 else q, session=session)
        answers.append(session.response.text)
    return answers


def test_ten_concurrent_sessions_of_five_turns_do_not_cross_talk(served, tmp_path):
    from gradio_client import Client, handle_file

    engine, url, _ = served
    items = data.make_shapes(10, image_size=96, seed=31)
    files = []
    for i, it in enumerate(items):
        files.append(tmp_path / f"shape{i}.png")
        it.image.save(files[-1])
    expected = [_expected(engine, Image.open(f).convert("RGB")) for f in files]
    assert (
        len({tuple(e) for e in expected}) > 5
    )  # the images give different conversations: cross-talk would show
    got, errors = [None] * len(files), []

    def visitor(i):
        try:
            client = Client(url, verbose=False)
            history, answers = [], []
            for n, q in enumerate(QUESTIONS):
                image = handle_file(str(files[i])) if n == 0 else None
                _, history = client.predict(q, image, history, 0.0, 0.8, api_name="/chat")
                answers.append(demo.reply_text(history[-1]["content"]))
            got[i] = answers
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(repr(err))

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert got == expected


def test_browser_pick_ask_answer_and_separate_sessions(served):
    if shutil.which("chromium") is None:
        if env.in_ci():
            pytest.fail(
                "CI needs Debian's chromium for the browser test: `apt-get install -y chromium` (.ci/run does)"
            )
        pytest.skip(
            "Debian chromium not installed: `sudo apt-get install -y chromium` to run the browser test"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    engine, url, picks = served  # photo files outside the working directory and the temp dir
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"]  # fmt: skip
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=args)
        try:
            pages = [browser.new_context().new_page() for _ in range(2)]
            for page, pick in zip(pages, (1, 4), strict=True):
                page.goto(url)
                page.locator("#quick-pick button.thumbnail-item").nth(pick).click()
                page.locator("#image img").wait_for(
                    timeout=30_000
                )  # Gradio's InvalidPathError: "Error" instead
                page.fill("#prompt textarea", "what colour is the shape?")
                page.click("#send")
            for page, pick in zip(pages, (1, 4), strict=True):
                photo = Image.open(picks[pick][0]).convert("RGB")
                answer = engine.chat(("what colour is the shape?", photo)).response.text
                bot = page.locator("#chat .bot").last  # the model's answer, as the page shows it
                sync_api.expect(bot).to_have_text(answer, timeout=60_000)
                assert page.locator("#chat .user").count() == 1  # its own question only
            colours = [picks[k][1].split()[3] for k in (1, 4)]  # "<i> a <size> <colour> <shape>"
            assert colours[0] != colours[1]
            assert colours[1] not in pages[0].inner_text("#chat")
        finally:
            browser.close()
