"""Stand-in for InternVL2's remote ``modeling_internvl_chat.py`` in the CPU rehearsal and the transformers track's tests.

Written for the course (not InternVL's code). It keeps the interface the labs rely on, at a size a CPU runs in a
second, and the traits of the published 2024 code that break under transformers 5 (``course_utils.remote_code``
repairs them; these files let CI prove it):

* it imports ``einops`` and ``timm.models.layers.DropPath`` (timm needs torchvision, absent in the CPU course env);
* ``InternVLChatModel.__init__`` never calls ``post_init()``;
* InternLM2's rotary embedding keeps ``inv_freq``, ``cos_cached`` and ``sin_cached`` as non-persistent buffers, which
  transformers 5 leaves uninitialised when it loads on the meta device;
* ``InternLM2ForCausalLM`` is a ``PreTrainedModel`` that defines ``prepare_inputs_for_generation`` (InternLM2's: the
  cache as ``past_key_values``, ``position_ids`` taken as given) but does not inherit ``GenerationMixin``: since
  transformers 4.50 it has no ``generate`` (OpenGVLab/InternVL issue 1068);
* the KV cache is a tuple of per-layer ``(key, value)`` tensors of shape (batch, kv_heads, tokens, head_dim);
* ``generate`` passes ``return_dict=None`` (its own argument's default) to ``language_model.generate``, as the
  InternVL 2.0 release does (OpenGVLab/InternVL ``modeling_internvl_chat.py`` at 0dc48a2, 2024-07-19; dropped in the
  2.5 code, 2024-12-17). An InternLM2 LLM ignores it; InternVL2-1B's Qwen2, transformers' own class, forwards it to
  its ``forward``, which transformers 5 already calls with ``return_dict=True``: "got multiple values for keyword
  argument 'return_dict'";
* the LLM is the class its config's ``architectures`` names: transformers' ``Qwen2ForCausalLM`` (InternVL2-1B) or the
  remote ``InternLM2ForCausalLM`` (InternVL2-2B).

The interface: ``chat(tokenizer, pixel_values, question, generation_config, history, return_history)`` builds the
prompt with ``get_conv_template(self.template)`` and ``<img>`` + 256 ``<IMG_CONTEXT>`` per 448-px tile + ``</img>``;
``generate(pixel_values, input_ids, attention_mask, **kw)`` puts the vision features in place of ``<IMG_CONTEXT>`` and
calls ``self.language_model.generate(inputs_embeds=...)``; ``forward(pixel_values, input_ids, attention_mask,
image_flags=...)`` returns the logits; InternLM2's module names (``model.tok_embeddings``, ``attention.wqkv``/``wo``,
``feed_forward.w1``/``w2``/``w3``, ``output``).
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.models.layers import DropPath
from torch import nn
from transformers import PreTrainedModel, Qwen2ForCausalLM
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_internvl_chat import InternLM2Config, InternVLChatConfig
from .conversation import get_conv_template

IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"


class InternLM2RotaryEmbedding(nn.Module):
    def __init__(self, dim, max_position_embeddings=2048, base=10000.0):
        super().__init__()
        self.dim, self.max_position_embeddings, self.base = dim, max_position_embeddings, base
        inv_freq = 1.0 / (self.base ** (torch.arange(0, self.dim, 2).float() / self.dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._set_cos_sin_cache(max_position_embeddings, self.inv_freq.device, torch.get_default_dtype())

    def _set_cos_sin_cache(self, seq_len, device, dtype):
        self.max_seq_len_cached = seq_len
        t = torch.arange(seq_len, device=device, dtype=self.inv_freq.dtype)
        emb = torch.cat([torch.outer(t, self.inv_freq)] * 2, dim=-1)
        self.register_buffer("cos_cached", emb.cos().to(dtype), persistent=False)
        self.register_buffer("sin_cached", emb.sin().to(dtype), persistent=False)

    def forward(self, x, seq_len):
        if seq_len > self.max_seq_len_cached:
            self._set_cos_sin_cache(seq_len, x.device, x.dtype)
        return self.cos_cached[:seq_len].to(x.dtype), self.sin_cached[:seq_len].to(x.dtype)


def rotate(x, cos, sin, position_ids):
    cos, sin = cos[position_ids].unsqueeze(1), sin[position_ids].unsqueeze(1)
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


class InternLM2Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.attention = nn.Module()
        self.attention.rotary_emb = InternLM2RotaryEmbedding(
            self.head_dim, c.max_position_embeddings, c.rope_theta
        )
        self.attention.wqkv = nn.Linear(
            c.hidden_size, (self.heads + 2 * self.kv_heads) * self.head_dim, bias=False
        )
        self.attention.wo = nn.Linear(self.heads * self.head_dim, c.hidden_size, bias=False)
        self.feed_forward = nn.Module()
        self.feed_forward.w1 = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.feed_forward.w3 = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.feed_forward.w2 = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)
        self.attention_norm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.ffn_norm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)

    def forward(self, x, position_ids, past):
        b, n, _ = x.shape
        qkv = self.attention.wqkv(self.attention_norm(x)).view(b, n, -1, self.head_dim).transpose(1, 2)
        q, k, v = qkv.split([self.heads, self.kv_heads, self.kv_heads], dim=1)
        past_len = past[0].shape[2] if past is not None else 0
        cos, sin = self.attention.rotary_emb(v, seq_len=past_len + n)
        q, k = rotate(q, cos, sin, position_ids), rotate(k, cos, sin, position_ids)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        groups = self.heads // self.kv_heads
        weights = q @ k.repeat_interleave(groups, 1).transpose(2, 3) / self.head_dim**0.5
        if weights.shape != (b, self.heads, n, k.shape[2]):  # InternLM2's eager attention checks this too
            raise ValueError(
                f"Attention weights should be of size {(b, self.heads, n, k.shape[2])}, but is {weights.shape}"
            )
        mask = torch.arange(k.shape[2])[None, :] <= (past_len + torch.arange(n))[:, None]
        weights = weights.float().masked_fill(~mask, torch.finfo(torch.float32).min).softmax(-1).to(v.dtype)
        out = weights @ v.repeat_interleave(groups, 1)
        x = x + self.attention.wo(out.transpose(1, 2).reshape(b, n, -1))
        f = self.feed_forward
        return x + f.w2(F.silu(f.w1(self.ffn_norm(x))) * f.w3(self.ffn_norm(x))), (k, v)


class InternLM2Model(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(InternLM2Layer(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        input_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        position_ids=None,
        **kwargs,
    ):
        x = self.tok_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        start = past_key_values[0][0].shape[2] if past_key_values else 0
        if position_ids is None:
            position_ids = torch.arange(start, start + x.shape[1])[None]
        cache = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, position_ids, past_key_values[i] if past_key_values else None)
            cache.append(kv)
        return BaseModelOutputWithPast(
            last_hidden_state=self.norm(x), past_key_values=tuple(cache) if use_cache else None
        )


class InternLM2ForCausalLM(PreTrainedModel):
    config_class = InternLM2Config
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.model = InternLM2Model(config)
        self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.tok_embeddings

    def get_output_embeddings(self):
        return self.output

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        **kwargs,
    ):
        out = self.model(input_ids, past_key_values, inputs_embeds, use_cache, position_ids)
        logits = self.output(out.last_hidden_state).float()
        return CausalLMOutputWithPast(logits=logits, past_key_values=out.past_key_values)

    def prepare_inputs_for_generation(
        self, input_ids, past_key_values=None, attention_mask=None, inputs_embeds=None, **kwargs
    ):
        if past_key_values is not None:
            past = past_key_values[0][0].shape[2]
            input_ids = input_ids[:, past:] if input_ids.shape[1] > past else input_ids[:, -1:]
        position_ids = kwargs.get("position_ids", None)
        if attention_mask is not None and position_ids is None:
            position_ids = attention_mask.long().cumsum(-1) - 1
            position_ids.masked_fill_(attention_mask == 0, 1)
            if past_key_values:
                position_ids = position_ids[:, -input_ids.shape[1] :]
        if inputs_embeds is not None and past_key_values is None:
            inputs = {"inputs_embeds": inputs_embeds}
        else:
            inputs = {"input_ids": input_ids}
        inputs.update(
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=kwargs.get("use_cache"),
            attention_mask=attention_mask,
        )
        return inputs


class InternVLChatModel(PreTrainedModel):
    config_class = InternVLChatConfig
    _no_split_modules = ["InternLM2Layer"]

    def __init__(self, config):
        super().__init__(config)
        vision, hidden = config.vision_config, config.llm_config.hidden_size
        stride = int(
            vision["patch_size"] / config.downsample_ratio
        )  # 14 px patches, pixel shuffle 0.5 → 28 px
        self.num_image_token = (config.force_image_size // stride) ** 2  # 256 for a 448-px tile
        self.vision_model = nn.Conv2d(3, vision["hidden_size"], kernel_size=stride, stride=stride)
        self.drop_path = DropPath(0.0)
        self.mlp1 = nn.Sequential(
            nn.LayerNorm(vision["hidden_size"]), nn.Linear(vision["hidden_size"], hidden)
        )
        architecture = config.llm_config.architectures[0]
        if architecture == "Qwen2ForCausalLM":
            self.language_model = Qwen2ForCausalLM(config.llm_config)
        elif architecture == "InternLM2ForCausalLM":
            self.language_model = InternLM2ForCausalLM(config.llm_config)
        else:
            raise NotImplementedError(f"{architecture} is not implemented.")
        self.template = config.template
        self.system_message = get_conv_template(self.template).system_message
        self.img_context_token_id = None  # no post_init(), like the published 2024 code

    def extract_feature(self, pixel_values):
        return self.mlp1(self.drop_path(rearrange(self.vision_model(pixel_values), "b c h w -> b (h w) c")))

    def _embeds(self, pixel_values, input_ids):
        embeds = self.language_model.get_input_embeddings()(input_ids)
        if pixel_values is not None:
            features = self.extract_feature(pixel_values.to(self.mlp1[1].weight.dtype)).reshape(
                -1, embeds.shape[-1]
            )
            picks = input_ids == self.img_context_token_id
            embeds[picks] = features[: int(picks.sum())].to(embeds.dtype)
        return embeds

    def forward(
        self,
        pixel_values,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        image_flags=None,
        past_key_values=None,
        labels=None,
        use_cache=None,
        **kwargs,
    ):
        if image_flags is not None:
            pixel_values = pixel_values[image_flags.squeeze(-1) == 1]
        embeds = self._embeds(pixel_values, input_ids)
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=use_cache)

    def chat(self, tokenizer, pixel_values, question, generation_config, history=None, return_history=False):
        if history is None and pixel_values is not None and "<image>" not in question:
            question = "<image>\n" + question
        self.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
        template = get_conv_template(self.template)
        template.system_message = self.system_message
        eos_token_id = tokenizer.convert_tokens_to_ids(template.sep.strip())
        for old_question, old_answer in history or []:
            template.append_message(template.roles[0], old_question)
            template.append_message(template.roles[1], old_answer)
        template.append_message(template.roles[0], question)
        template.append_message(template.roles[1], None)
        query = template.get_prompt()
        if pixel_values is not None:
            tokens = IMG_START + IMG_CONTEXT * self.num_image_token * pixel_values.shape[0] + IMG_END
            query = query.replace("<image>", tokens, 1)
        inputs = tokenizer(query, return_tensors="pt")
        generation_config["eos_token_id"] = eos_token_id
        output = self.generate(
            pixel_values, inputs["input_ids"], inputs["attention_mask"], **generation_config
        )
        response = (
            tokenizer.batch_decode(output, skip_special_tokens=True)[0].split(template.sep.strip())[0].strip()
        )
        history = [*(history or []), (question, response)]
        return (response, history) if return_history else response

    @torch.no_grad()
    def generate(
        self,
        pixel_values=None,
        input_ids=None,
        attention_mask=None,
        generation_config=None,
        output_hidden_states=None,
        return_dict=None,
        **generate_kwargs,
    ):
        embeds = self._embeds(pixel_values, input_ids)
        return self.language_model.generate(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            generation_config=generation_config,
            output_hidden_states=output_hidden_states,
            return_dict=return_dict,
            use_cache=True,
            **generate_kwargs,
        )
