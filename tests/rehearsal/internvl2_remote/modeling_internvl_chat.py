"""Stand-in for InternVL2-2B's remote ``modeling_internvl_chat.py`` in the CPU rehearsal of the full track.

Written for the course (not InternVL's code). It keeps what notebook 07's transformers baseline relies on:
``InternVLChatModel.chat(tokenizer, pixel_values, question, generation_config)`` builds the prompt with
``<img>`` + 256 ``<IMG_CONTEXT>`` per 448-px tile + ``</img>``, replaces those embeddings with vision features and
calls ``self.language_model.generate(inputs_embeds=...)``; and, like the released remote code, its
``InternLM2ForCausalLM`` is a ``PreTrainedModel`` that defines ``prepare_inputs_for_generation`` but does not inherit
``GenerationMixin``: since transformers 4.50 it therefore has no ``generate`` (OpenGVLab/InternVL issue 1068).
The "LLM" is a bigram table (the next token depends on the last one only), which is all a rehearsal needs.
"""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_internvl_chat import InternLM2Config, InternVLChatConfig

SYSTEM = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"


class InternLM2ForCausalLM(PreTrainedModel):
    config_class = InternLM2Config

    def __init__(self, config):
        super().__init__(config)
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.tok_embeddings

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kwargs):
        if inputs_embeds is None:
            inputs_embeds = self.tok_embeddings(input_ids)
        return CausalLMOutputWithPast(logits=self.output(inputs_embeds).float())

    def prepare_inputs_for_generation(self, input_ids, inputs_embeds=None, **kwargs):
        if inputs_embeds is not None and (input_ids is None or input_ids.shape[1] == 0):
            return {"inputs_embeds": inputs_embeds}
        return {"input_ids": input_ids[:, -1:]}


class InternVLChatModel(PreTrainedModel):
    config_class = InternVLChatConfig
    _no_split_modules = ["InternLM2ForCausalLM"]

    def __init__(self, config):
        super().__init__(config)
        vision, hidden = config.vision_config, config.llm_config.hidden_size
        stride = int(
            vision["patch_size"] / config.downsample_ratio
        )  # 14 px patches, pixel shuffle 0.5 → 28 px
        self.num_image_token = (config.force_image_size // stride) ** 2  # 256 for a 448-px tile
        self.vision_model = nn.Conv2d(3, vision["hidden_size"], kernel_size=stride, stride=stride)
        self.mlp1 = nn.Linear(vision["hidden_size"], hidden)
        self.language_model = InternLM2ForCausalLM(config.llm_config)
        self.template = config.template
        self.post_init()

    def extract_feature(self, pixel_values):
        return self.mlp1(self.vision_model(pixel_values).flatten(2).transpose(1, 2))

    def chat(self, tokenizer, pixel_values, question, generation_config, history=None, return_history=False):
        if pixel_values is not None and "<image>" not in question:
            question = "<image>\n" + question
        turns = "".join(
            f"<|im_start|>user\n{q}<|im_end|><|im_start|>assistant\n{a}<|im_end|>" for q, a in history or []
        )
        query = f"<|im_start|>system\n{SYSTEM}<|im_end|>{turns}<|im_start|>user\n{question}<|im_end|><|im_start|>assistant\n"
        if pixel_values is not None:
            tiles = pixel_values.shape[0]
            query = query.replace(
                "<image>", "<img>" + "<IMG_CONTEXT>" * self.num_image_token * tiles + "</img>", 1
            )
        inputs = tokenizer(query, return_tensors="pt")
        self.img_context_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
        generation_config = dict(
            generation_config, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>")
        )
        output = self.generate(
            pixel_values, inputs["input_ids"], inputs["attention_mask"], **generation_config
        )
        response = tokenizer.batch_decode(output, skip_special_tokens=True)[0].split("<|im_end|>")[0].strip()
        return (response, [*(history or []), (question, response)]) if return_history else response

    @torch.no_grad()
    def generate(self, pixel_values=None, input_ids=None, attention_mask=None, **generate_kwargs):
        embeds = self.language_model.get_input_embeddings()(input_ids)
        if pixel_values is not None:
            features = self.extract_feature(pixel_values.to(self.mlp1.weight.dtype)).reshape(
                -1, embeds.shape[-1]
            )
            picks = input_ids[0] == self.img_context_token_id
            embeds[0, picks] = features[: int(picks.sum())].to(embeds.dtype)
        return self.language_model.generate(
            inputs_embeds=embeds, attention_mask=attention_mask, **generate_kwargs
        )
