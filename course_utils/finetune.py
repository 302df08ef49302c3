"""Fine-tuning for notebook 08: the mini track's LoRA on the mini InternVL (peft), in the original lab's answer format.

The original InternVL2 lab fine-tunes InternVL2-2B with XTuner: LoRA on the LLM, the ViT and the rest frozen, each sample
"question + image → <correct choice>，图中的菜是<dish>" (``foodieqa.to_llava``). The mini track does the same with
peft on the mini InternVL, with two additions the small model needs (measured on the mini model):

* the projector (mlp1) and the ViT get LoRA too: InternViT was pretrained on billions of web images, food among
  them, but the mini ViT has only seen coloured shapes, and its frozen features tell the dishes apart poorly (a
  linear probe on them: 0.69 on held-out photos, measured). With a frozen mini ViT the held-out accuracy after LoRA
  swung between 0.74 and 0.96 with the CPU's float rounding (AVX-512, AVX2 or no vector kernels) and the data size;
  with LoRA on the ViT as well it stays at 0.94-1.0 (issue 29's table). XTuner's InternVL model has the same switch
  (``visual_encoder_lora``), which the original lab leaves off;
* the **embedding rows of the new words** (dish names, cuisines, regions, the answer phrase) are trainable through
  peft's ``trainable_token_indices``: embeddings are tied and frozen under LoRA, and without this the model learns
  the answer format but names the same dish every time;
* the gradients' norm is clipped to 1, as in XTuner's config (``max_norm = 1``): at lr 3e-3 an unclipped run could
  leave the loss on a plateau (0.5 after 600 steps) where another rounding reached 0.01.

The full track (XTuner on a GPU: config, commands, finished runs, conversion) is ``course_utils.xtuner_run``.
"""

import warnings
from pathlib import Path

import torch
from PIL import Image

from . import data, foodieqa

LM_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
VIT_LINEARS = ("q_proj", "k_proj", "v_proj", "projection_layer", "fc1", "fc2")
TARGET_MODULES = (
    r".*language_model\.layers\.\d+\.(self_attn|mlp)\.(" + "|".join(LM_LINEARS) + r")"
    r"|.*multi_modal_projector\.linear_[12]"
    r"|.*vision_tower\.encoder\.layer\.\d+\.(attention|mlp)\.(" + "|".join(VIT_LINEARS) + r")"
)
MAX_NORM = 1.0  # gradient clipping, as XTuner's config (max_norm = 1)


def new_word_ids(tokenizer, items: list[dict]) -> list[int]:
    """Token ids of every choice, dish name and the answer phrase in ``items`` (the words LoRA must learn to say)."""
    words = {data.ANSWER_PHRASE}
    for item in items:
        words.update(item["choices"])
        words.add(item["food_meta"]["food_name"])
    ids = set()
    for word in words:
        ids.update(tokenizer(word, add_special_tokens=False)["input_ids"])
    unk = tokenizer.unk_token_id
    if unk in ids:
        raise ValueError(
            "some words are unknown to the tokenizer (<unk>): LoRA cannot teach a word it cannot spell"
        )
    return sorted(ids)


def add_lora(model, token_ids: list[int], *, r: int = 16, alpha: int = 32):
    """Wrap ``model`` with LoRA on the LLM's linears, the projector and the ViT's linears, and trainable rows for
    ``token_ids``."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGET_MODULES,
        trainable_token_indices={"embed_tokens": list(token_ids)},
    )  # fmt: skip
    with warnings.catch_warnings():  # peft 0.21 calls a transformers 5 method deprecated for v6
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        return get_peft_model(model, config)


class FoodRows:
    """SIVQA items as training rows in the original lab's format: prompt (image + question), answer + ``<|im_end|>``."""

    def __init__(self, processor, items: list[dict], image_root):
        # lazily: the full-track helpers below must import under xtuner's pins
        from .mini.sft import chat_prompt

        tok = processor.tokenizer
        end = tok.convert_tokens_to_ids("<|im_end|>")
        self.pad = tok.pad_token_id
        images = [Image.open(Path(image_root) / it["food_meta"]["food_file"]).convert("RGB") for it in items]
        self.rows, self.labels = [], []
        for item, image in zip(items, images, strict=True):
            sample = foodieqa.to_llava(item)
            prompt = processor(
                images=[image], text=[chat_prompt(processor, item["question"])], return_tensors="pt"
            )
            answer = tok(sample["conversations"][1]["value"], add_special_tokens=False)["input_ids"] + [end]
            ids = prompt["input_ids"][0].tolist()
            self.rows.append(ids + answer)
            self.labels.append([-100] * len(ids) + answer)
        self.pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, index: list[int]) -> dict[str, torch.Tensor]:
        from .mini.sft import pad_right

        padded = pad_right([self.rows[i] for i in index], [self.labels[i] for i in index], self.pad)
        return {**padded, "pixel_values": self.pixels[index]}


def lora_finetune(model, rows: FoodRows, *, steps: int = 800, lr: float = 3e-3, batch_size: int = 16,
                  seed: int = 0, progress: bool = True, log: list | None = None) -> list[float]:  # fmt: skip
    """Train the LoRA-wrapped ``model`` on ``rows``; returns the losses. The model is left in eval mode.

    ``log``: a list that receives ``{"iter", "loss", "lr"}`` per step, as ``read_log`` returns XTuner's (``plot_log``).
    """
    from .mini.sft import train_loop

    model.train()

    def step(g):
        idx = torch.randint(len(rows), (batch_size,), generator=g).tolist()
        return model(**rows.batch(idx)).loss

    params = [p for p in model.parameters() if p.requires_grad]
    losses = train_loop(params, steps, lr, seed, step, "LoRA", progress, log=log, max_norm=MAX_NORM)
    model.eval()
    return losses
