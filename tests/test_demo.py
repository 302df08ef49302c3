"""The Gradio demo: callbacks, gallery and sampling (fast), then the real app with the trained mini InternVL through
gradio_client (10 concurrent sessions × 5 turns) and a headless Chromium driven by Playwright."""

import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image

from course_utils import data, demo, env, infer

gr = pytest.importorskip("gradio")


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
    app = demo.build_app(EchoEngine(), "mini")
    url = demo.serve(app)
    try:
        Image.new("RGB", (8, 8), (0, 128, 255)).save(tmp_path / "blue.png")
        assert demo.ask(url, "what colour?", tmp_path / "blue.png") == "what colour? (0, 128, 255)"
    finally:
        app.close()
    assert demo.reply_text([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "ab"


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
    from course_utils.mini import load_mini_internvl

    engine = infer.TransformersChat(*load_mini_internvl(progress=False))
    app = demo.build_app(engine, "mini")
    yield engine, demo.serve(app)
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

    engine, url = served
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
    engine, url = served
    picks = demo.quick_pick("mini")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"]  # fmt: skip
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=args)
        try:
            pages = [browser.new_context().new_page() for _ in range(2)]
            for page, pick in zip(pages, (1, 4), strict=True):
                page.goto(url)
                page.locator("#quick-pick button.thumbnail-item").nth(pick).click()
                page.locator("#image img").wait_for()
                page.fill("#prompt textarea", "what colour is the shape?")
                page.click("#send")
            for page, pick in zip(pages, (1, 4), strict=True):
                answer = engine.chat(("what colour is the shape?", picks[pick][0])).response.text
                bot = page.locator("#chat .bot").last  # the model's answer, as the page shows it
                sync_api.expect(bot).to_have_text(answer, timeout=60_000)
                assert page.locator("#chat .user").count() == 1  # its own question only
            colours = [demo.quick_pick("mini")[k][1].split()[2] for k in (1, 4)]
            assert colours[0] != colours[1]
            assert colours[1] not in pages[0].inner_text("#chat")
        finally:
            browser.close()
