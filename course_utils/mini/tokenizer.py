"""An offline word-level tokenizer for the mini models, trained in milliseconds.

Real MLLMs ship a tokenizer with their weights; the course cannot download one, so it trains its own on the
sentences of its synthetic worlds. It keeps what matters for teaching:

* the image tokens of LLaVA (``<image>``) and InternVL (``<img>``, ``</img>``, ``<IMG_CONTEXT>``), declared as
  named special tokens so transformers' processors find them;
* a ChatML chat template (``<|im_start|>user ... <|im_end|>``), as InternVL2 and Qwen2 use;
* lossless decoding: a piece keeps its leading space (" red"), so ``decode(encode(text)) == text`` for
  in-vocabulary text;
* the Chinese words the labs need (dish names, cuisines, the original lab's answer phrase "，图中的菜是") as
  whole-word added tokens: a word the tokenizer splits into ``<unk>`` can never be learned (notebook 08).

Introduced in notebook 00; the vocabulary is used by every mini model.
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from .. import data

UNK, PAD, EOT = "<unk>", "<pad>", "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
IMAGE, IMG_START, IMG_END, IMG_CONTEXT, VIDEO = "<image>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"
CLS, DEC = "[CLS]", "[DEC]"  # BERT-style tokens for the Q-Former's text side (notebook 02)
# Order matters: transformers' CLIP text model treats eos_token_id == 2 as a legacy config and pools at the
# largest token id instead of at <|endoftext|>; so id 2 must not be the end-of-text token.
SPECIAL_TOKENS = [UNK, PAD, IM_START, IM_END, EOT, IMAGE, IMG_START, IMG_END, IMG_CONTEXT, VIDEO, CLS, DEC]

# Named tokens, as transformers 5 processors look them up (tokenizer.image_token, tokenizer.context_image_token...).
NAMED_IMAGE_TOKENS = {
    "image_token": IMAGE,
    "start_image_token": IMG_START,
    "end_image_token": IMG_END,
    "context_image_token": IMG_CONTEXT,
    "video_token": VIDEO,
}

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ IMAGE_PLACEHOLDER + '\n' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


def chat_template(image_placeholder: str = IMAGE) -> str:
    """ChatML template; an ``{"type": "image"}`` content part becomes ``image_placeholder`` + newline."""
    return CHAT_TEMPLATE.replace("IMAGE_PLACEHOLDER", repr(image_placeholder))


# Pieces: a run of letters/digits with an optional leading space, one punctuation mark (with optional
# space), or a run of whitespace. Keeping the space inside the piece makes decoding exact.
PIECE_PATTERN = r" ?[^\s\p{P}\p{S}]+| ?[\p{P}\p{S}]|\s+"

GENERAL_SENTENCES = [
    "system user assistant",
    "you are a helpful assistant.",
    "what is in the image? what is in this picture? describe this photo, please.",
    "what do you see? what's this? is there a shape? yes, no. i don't know.",
    "how many shapes are there? one two three four five",
    "which dish is this? what dish is it? the answer is",
    "0 1 2 3 4 5 6 7 8 9 a b c d e",
    "A B C D option options choose the correct answer from the choices:",
    "hello! hi, thanks. ok",
    "the a an of and or in on at to with for is are it this that there",
    "colour color shape size box cat cup coffee rocket astronaut person",
    "food dish cuisine region ingredient main",
]

CHINESE_WORDS = [
    data.ANSWER_PHRASE,
    "选项有",
    "请根据上图从所提供的选项中选择一个正确答案",
    "这道菜",
    "图中的菜",
    "这是",
    "哪道菜",
    "哪个",
    "哪里",
    "什么",
    "属于",
    "来自",
    "菜系",
    "地区",
    "主要",
    "食材",
    "名字",
    "是",
    "的",
    "为",
    "，",
    "。",
    "？",
    "：",
    "（",
    "）",
    "、",
]


def corpus() -> list[str]:
    """The sentences the tokenizer is trained on: shapes world, general chat words, English dish names."""
    lines = data.shapes_sentences() + GENERAL_SENTENCES
    lines += [english for _, english, _, _ in data.MINI_FOOD_DISHES]
    # Every word also appears alone, with and without a leading space, so both pieces ("red", " red") exist.
    words = sorted({w for line in lines for w in line.split()})
    return lines + words + [" " + w for w in words] + ["\n", "\n\n", " "]


def chinese_vocabulary() -> list[str]:
    """Whole-word Chinese tokens: dish names, cuisines, regions and prompt phrases."""
    words = list(CHINESE_WORDS)
    for name, _, cuisine, region in data.MINI_FOOD_DISHES:
        words += [name, cuisine, region]
    return list(dict.fromkeys(words))  # keep order, drop duplicates


def build_tokenizer(
    extra_words: list[str] | None = None, *, name_image_token: bool = True
) -> PreTrainedTokenizerFast:
    """Train the course tokenizer (deterministic, ~10 ms) and wrap it for transformers.

    ``extra_words`` become whole-word added tokens (e.g. new dish names for a build-your-own dataset).
    Text is lower-cased before tokenising; special tokens are matched first and never lower-cased.
    ``name_image_token=False`` keeps ``<image>`` in the vocabulary but does not declare it as
    ``tokenizer.image_token`` (transformers 5's Blip2Processor needs that, see ``mini.models``).
    """
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1, show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    words = chinese_vocabulary() + list(extra_words or [])
    tok.add_tokens([AddedToken(w, normalized=False, single_word=False) for w in dict.fromkeys(words)])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        pad_token=PAD,
        eos_token=IM_END,
        bos_token=None,
        extra_special_tokens={
            k: v for k, v in NAMED_IMAGE_TOKENS.items() if name_image_token or k != "image_token"
        },
        model_max_length=32768,
        padding_side="left",
    )
    wrapped.chat_template = chat_template(IMAGE)
    return wrapped
