"""The Gradio web demo of notebooks 07 and 08: chat about an image with the mini InternVL (CPU) or InternVL2-2B (LMDeploy).

    python -m course_utils.demo --backend mini                 # the trained mini InternVL, on CPU
    python -m course_utils.demo --backend lmdeploy --model /root/share/new_models/OpenGVLab/InternVL2-2B
    python -m course_utils.demo --backend transformers --model ~/models/InternVL2-1B   # real weights, CPU or GPU
    python -m course_utils.demo --backend mini --model <08's fine-tuned mini model> --photos <its dish photos>

What it does that the original InternVL2 lab's demo did not:

* **one chat per browser session**: the conversation lives in a ``gr.State``, so two visitors (or two tabs) never
  share a history; "New chat", picking another photo or uploading one starts a fresh conversation;
* **the image is really sent**: it goes with the first question of the conversation (later turns reuse it, as
  ``Pipeline.chat`` sessions do);
* **sampling that does something**: temperature 0 is greedy decoding; above 0, ``GenConfig`` turns ``do_sample`` on so
  that top-p and temperature are used (lmdeploy ignores them otherwise);
* **private by default**: bound to 127.0.0.1, no public share link unless ``--share``, uploads limited to 5 MB;
  of your own files it serves only the quick-pick photos it shows (Gradio refuses any other file outside the working
  directory and the temp folder, so photos in ``~/.cache/mllm-course`` or ``/root/share`` are allowed one by one);
* **errors in the chat**: when the engine fails (lmdeploy answers ``finish_reason="error"`` with no text) the chat
  says so instead of showing an empty answer;
* **image first**: the image goes before the question, as InternVL and XTuner's fine-tuning lay it out (``infer``'s
  default); ``--no-image-first`` puts it after the question, to compare.

Gradio is imported only here (``pip install gradio``; the lab environments have it).
"""

import argparse
import socket
import sys
import threading
from pathlib import Path

from . import data, paths
from .backends import BACKENDS, make_engine
from .foodieqa import IMAGE_SUFFIXES
from .infer import GenConfig, Session, check_response

MAX_UPLOAD = "5mb"
# The sampling sliders' ranges: inside lmdeploy's limits (temperature in [0, 2], top_p in [0, 1]; infer.LIMITS), and
# Gradio refuses values outside a slider's range, so the demo never builds a GenConfig that lmdeploy would refuse.
TEMPERATURE_RANGE = (0.0, 1.5)
TOP_P_RANGE = (0.05, 1.0)
EXAMPLES = {  # the mini model's shapes world, and photos (InternVL2's, or a fine-tuned mini model's dishes)
    "shapes": [
        "describe the image.",
        "what colour is the shape?",
        "what shape is it?",
        "is the shape big or small?",
    ],
    "photos": [
        "图中的菜是什么？",
        "这道菜属于哪个菜系？",
        "Describe this dish.",
        "What are the main ingredients?",
    ],
}


def quick_pick(backend: str, limit: int = 8, photos=None) -> list[tuple]:
    """(image, label) pairs for the quick-pick bar.

    ``photos``: a folder of your own (one sub-folder per dish, as for ``foodieqa build``), labelled by sub-folder.
    Otherwise the mini model gets the synthetic shapes it knows; InternVL2 gets FoodieQA photos when the dataset is
    present (``paths.foodieqa_dir()``), else the course's bundled sample photos.
    """
    if photos is not None:
        found = _photos(Path(photos), limit)
        if not found:
            raise FileNotFoundError(
                f"{photos}: no photos ({', '.join(IMAGE_SUFFIXES)}) in this folder or below"
            )
        return [(str(p.absolute()), p.parent.name if p.parent != Path(photos) else p.stem) for p in found]
    if backend == "mini":
        items = data.make_shapes(limit, image_size=96, seed=2024)
        return [(it.image, it.caption) for it in items]
    root = paths.foodieqa_dir()
    found = _photos(root, limit) if root.is_dir() else []
    if found:
        return [(str(p.absolute()), p.stem) for p in found]
    return [(data.sample_photo(name), name) for name in data.sample_photo_names()[:limit]]


def _photos(root: Path, limit: int) -> list[Path]:
    """Up to ``limit`` photos under ``root``, spread over its sub-folders (one per dish) before taking seconds."""
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    by_folder: dict[Path, list[Path]] = {}
    for p in found:
        by_folder.setdefault(p.parent, []).append(p)
    spread = [p for rank in range(max(map(len, by_folder.values()), default=0))
              for group in by_folder.values() if rank < len(group) for p in [group[rank]]]  # fmt: skip
    return spread[:limit]


def gen_config(temperature: float, top_p: float, max_new_tokens: int = 256) -> GenConfig:
    """Temperature 0 → greedy; otherwise sampling with the given temperature and top-p."""
    if temperature <= 0:
        return GenConfig(max_new_tokens=max_new_tokens)
    return GenConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)


class ChatHandlers:
    """The demo's callbacks, without Gradio: easy to test, one lock so a CPU model answers one question at a time.

    ``image_first``: where the image goes in a conversation's first turn (None: the engine's default, image first)."""

    def __init__(self, engine, max_new_tokens: int = 256, image_first: bool | None = None):
        self.engine = engine
        self.max_new_tokens = max_new_tokens
        self.image_first = image_first
        self.lock = threading.Lock()

    def respond(self, text, image, session: Session | None, history, temperature=0.0, top_p=0.8):
        """One turn: returns (cleared textbox, new session, new chat history).

        When the engine fails, the chat shows why and the conversation stays as it was (ask again, or "New chat")."""
        text = (text or "").strip()
        if not text:
            raise ValueError("Type a question first.")
        if session is None and image is None:
            raise ValueError("Pick a photo from the quick-pick bar or upload one first.")
        prompt = (text, image) if session is None else text
        layout = {} if session is not None or self.image_first is None else {"image_first": self.image_first}
        gen = gen_config(temperature, top_p, self.max_new_tokens)
        try:
            with self.lock:
                answered = self.engine.chat(prompt, session=session, gen_config=gen, **layout)
            check_response(answered.response)  # LMDeployChat checks it itself; an engine that does not, here
        except RuntimeError as err:  # lmdeploy's finish_reason "error" (no text): say so, with its error code
            print(f"demo: no answer to {text!r}: {err}", file=sys.stderr)
            reply = f'⚠️ No answer: {err}. Ask again, or press "New chat" to start over.'
            return "", session, [*(history or []), {"role": "user", "content": text},
                                 {"role": "assistant", "content": reply}]  # fmt: skip
        turn = [{"role": "user", "content": text}, {"role": "assistant", "content": answered.response.text}]
        return "", answered, [*(history or []), *turn]

    @staticmethod
    def new_chat():
        """A fresh conversation: no session, empty history."""
        return None, []


def build_app(
    engine,
    backend: str = "mini",
    *,
    photos=None,
    title: str | None = None,
    max_new_tokens: int = 256,
    image_first: bool | None = None,
):
    """The Gradio Blocks app around ``engine`` (an ``infer`` chat engine); ``photos``: a folder for the quick picks;
    ``image_first``: the image before the question (True), after it (False), or the engine's default (None).

    Start it with ``launch`` or ``serve``: they let Gradio serve the quick-pick photo files (``app.quick_pick_files``),
    which it refuses outside the working directory and the temp folder otherwise."""
    import gradio as gr

    handlers = ChatHandlers(engine, max_new_tokens, image_first)
    picks = quick_pick(backend, photos=photos)
    titles = {"mini": "Mini InternVL (CPU)", "lmdeploy": "InternVL2-2B with LMDeploy"}
    real = getattr(engine, "checkpoint", None)
    title = title or titles.get(backend) or f"{real.name if real else 'InternVL'} with transformers"

    def respond(text, image, session, history, temperature, top_p):
        try:
            return handlers.respond(text, image, session, history, temperature, top_p)
        except ValueError as err:  # a learner's mistake, shown in the page instead of a traceback
            raise gr.Error(str(err)) from None

    def pick(evt: gr.SelectData):
        image, _ = picks[evt.index]
        return (image, *handlers.new_chat())

    with gr.Blocks(title=title) as app:
        session = gr.State(None)
        gr.Markdown(
            f"## {title}\nPick or upload a photo, then ask about it. Each browser tab has its own chat."
        )
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(type="pil", label="image", elem_id="image", height=300)
                gallery = gr.Gallery(value=picks, label="quick pick", columns=4, allow_preview=False,
                                     elem_id="quick-pick", height=200)  # fmt: skip
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="chat", elem_id="chat", height=360)
                text = gr.Textbox(label="question", placeholder="ask about the image", elem_id="prompt")
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    new = gr.Button("New chat", elem_id="new-chat")
                world = "shapes" if backend == "mini" and photos is None else "photos"
                gr.Examples(examples=[[e] for e in EXAMPLES[world]], inputs=[text])
                with gr.Accordion("sampling", open=False):
                    temperature = gr.Slider(
                        *TEMPERATURE_RANGE,
                        value=0.0,
                        step=0.05,
                        label="temperature (0 = greedy)",
                        elem_id="temperature",
                    )
                    top_p = gr.Slider(
                        *TOP_P_RANGE,
                        value=0.8,
                        step=0.05,
                        label="top-p (used when temperature > 0)",
                        elem_id="top-p",
                    )
        inputs = [text, image, session, chatbot, temperature, top_p]
        outputs = [text, session, chatbot]
        send.click(respond, inputs, outputs, api_name="chat")
        text.submit(respond, inputs, outputs, api_name=False)
        new.click(handlers.new_chat, None, [session, chatbot], api_name="new_chat")
        gallery.select(pick, None, [image, session, chatbot], api_name=False)
        image.upload(handlers.new_chat, None, [session, chatbot], api_name=False)
        image.clear(handlers.new_chat, None, [session, chatbot], api_name=False)
    app.quick_pick_files = [path for path, _ in picks if isinstance(path, str)]  # photo files, not PIL images
    return app


def launch(app, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False, block: bool = True):
    """Start the server: local only unless ``host``/``share`` say otherwise; uploads capped at ``MAX_UPLOAD``.

    Gradio serves a file a callback returns only from the working directory, the temp folder or ``allowed_paths``;
    the quick-pick photo files of ``build_app`` are allowed one by one (not their folders: every allowed file can be
    downloaded by anyone who can open the page)."""
    app.queue(default_concurrency_limit=4)
    return app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_UPLOAD,
        prevent_thread_lock=not block,
        allowed_paths=list(getattr(app, "quick_pick_files", [])) or None,
    )


def serve(app) -> str:
    """Start ``app`` in the background on a free local port (notebooks, tests); returns its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch(app, port=port, block=False)
    return f"http://127.0.0.1:{port}/"


def reply_text(content) -> str:
    """A chat message's text: Gradio 6 sends a message's content as a string or a list of typed parts."""
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def ask(url: str, question: str, photo) -> str:
    """One turn from a program through ``gradio_client``, as a new browser session would: the demo's answer to
    ``question`` about the image file ``photo`` (greedy)."""
    from gradio_client import Client, handle_file

    _, history = Client(url, verbose=False).predict(
        question, handle_file(str(photo)), [], 0.0, 0.8, api_name="/chat"
    )
    return reply_text(history[-1]["content"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_utils.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, default="mini")
    parser.add_argument(
        "--model",
        help="model folder (lmdeploy default: MLLM_COURSE_MODEL_DIR; mini default: the shapes model)",
    )
    parser.add_argument(
        "--photos", help="a folder of photos for the quick-pick bar (one sub-folder per dish)"
    )
    parser.add_argument(
        "--image-first",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the image before the question (InternVL's and XTuner's layout, the default) or after it (--no-image-first)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 makes it reachable from other machines")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--share", action="store_true", help="create a public gradio.live link (off by default)"
    )
    args = parser.parse_args(argv)
    engine = make_engine(args.backend, args.model)
    app = build_app(engine, args.backend, photos=args.photos, image_first=args.image_first)
    launch(app, host=args.host, port=args.port, share=args.share)


if __name__ == "__main__":
    main()
