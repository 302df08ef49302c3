"""LLaVA-1.5's response-format experiment (notebook 03): the mix, its chats and how answers are classified."""

import dataclasses

import pytest
import torch

from course_utils import data
from course_utils.mini import build_llava, response_format, sft

ITEMS = data.make_shapes(12, image_size=48, seed=3)


@pytest.fixture(scope="module")
def tiny():
    """An untrained tiny LLaVA: (model, processor)."""
    return build_llava(image_size=48, patch_size=8, vision_hidden=32, hidden=32, layers=1, seed=0)


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


def test_only_the_short_question_carries_the_instruction_and_every_word_is_known(processor):
    unk = processor.tokenizer.unk_token_id
    for with_instruction in (False, True):
        tasks = response_format.tasks(with_instruction)
        for kind in response_format.KINDS:
            short, sentence = tasks[f"{kind}, short"][0], tasks[f"{kind}, sentence"][0]
            assert sentence == data.QUESTIONS[kind]
            assert short == (f"{sentence}\n{response_format.FORMAT_PROMPT}" if with_instruction else sentence)
            for text in (
                short,
                *(answer(ITEMS[0]) for _, answer in (tasks[f"{kind}, short"], tasks[f"{kind}, sentence"])),
            ):
                assert unk not in processor.tokenizer(text, add_special_tokens=False)["input_ids"], text


def test_answers_are_the_item_word_or_a_sentence_about_it():
    item = dataclasses.replace(ITEMS[0], colour="red", shape="star", size="big")
    tasks = response_format.tasks(True)
    assert [tasks[f"{k}, short"][1](item) for k in response_format.KINDS] == ["red", "star", "big"]
    assert [tasks[f"{k}, sentence"][1](item) for k in response_format.KINDS] == [
        "the shape is red.", "it is a star.", "the star is big.",
    ]  # fmt: skip


def test_each_sampled_chat_keeps_one_style_and_both_styles_occur(processor):
    mix = response_format.FormatMix(processor, ITEMS, format_prompt=True)
    styles = set()
    for seed in range(4):
        batch = mix.sample(12, torch.Generator().manual_seed(seed))
        assert batch["input_ids"].shape[0] == 4  # 12 answers = 4 images × 3 questions
        for labels in batch["labels"]:
            answers = processor.tokenizer.decode(labels[labels != -100]).split("<|im_end|>")[:-1]
            kinds = {response_format.answer_style(a.strip()) for a in answers}
            assert len(answers) == 3 and len(kinds) == 1, answers
            styles |= kinds
    assert styles == {"short", "sentence"}


@pytest.mark.parametrize(
    ("text", "style"),
    [
        ("red", "short"),
        ("the shape is red.", "sentence"),
        ("red.", "other"),
        ("the shape is red", "other"),
        ("", "other"),
    ],
)
def test_answer_style(text, style):
    assert response_format.answer_style(text) == style


def test_unknown_kinds_are_refused_with_the_known_ones(processor):
    with pytest.raises(ValueError, match="colour, short"):
        sft.Conversations(processor, ITEMS, kinds=("colour",), tasks=response_format.tasks(True))


def test_default_conversations_keep_the_four_shapes_questions(processor):
    chats = sft.Conversations(processor, ITEMS[:2])
    assert chats.kinds == tuple(data.QUESTIONS)
    assert chats.truth[0] == dict(zip(data.QUESTIONS, (a for _, a in ITEMS[0].qa()), strict=True))


def test_measure_reports_both_styles_of_a_model(tiny):
    model, processor = tiny
    result = response_format.measure(
        model, response_format.FormatMix(processor, ITEMS[:3], format_prompt=True)
    )
    assert set(result) == {"short", "sentence"}
    for numbers in result.values():
        assert set(numbers) == {"in the wanted style", "exact match"}
        assert all(0 <= v <= 1 for v in numbers.values())
