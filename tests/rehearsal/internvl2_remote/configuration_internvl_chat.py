"""Stand-in for InternVL2's remote ``configuration_internvl_chat.py`` in the CPU rehearsal and the laptop track's
tests (course-written, not InternVL's code): ``InternVLChatConfig`` with ``vision_config``, ``llm_config`` (an
InternLM2 or a Qwen2 config, by the LLM's ``architectures``), ``template`` and the tiling settings, at a size that runs
in a second on a CPU.
"""

from transformers import PretrainedConfig, Qwen2Config


class InternLM2Config(PretrainedConfig):
    model_type = "internlm2"

    def __init__(
        self,
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        max_position_embeddings=4096,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.max_position_embeddings = max_position_embeddings
        kwargs.setdefault("architectures", ["InternLM2ForCausalLM"])
        super().__init__(**kwargs)


class InternVLChatConfig(PretrainedConfig):
    model_type = "internvl_chat"

    def __init__(
        self,
        vision_config=None,
        llm_config=None,
        template="internlm2-chat",
        force_image_size=448,
        downsample_ratio=0.5,
        ps_version="v2",
        dynamic_image_size=True,
        use_thumbnail=True,
        min_dynamic_patch=1,
        max_dynamic_patch=12,
        select_layer=-1,
        **kwargs,
    ):
        self.vision_config = dict(vision_config or {"image_size": 448, "patch_size": 14, "hidden_size": 16})
        llm_config = (
            llm_config.to_dict() if isinstance(llm_config, PretrainedConfig) else dict(llm_config or {})
        )
        # InternVL2-1B's LLM is Qwen2 (transformers' own classes), InternVL2-2B's InternLM2 (remote), chosen by the
        # architecture its config names, as the published code does
        architecture = (llm_config.get("architectures") or ["InternLM2ForCausalLM"])[0]
        if architecture == "Qwen2ForCausalLM":
            self.llm_config = Qwen2Config(**llm_config)
        elif architecture == "InternLM2ForCausalLM":
            self.llm_config = InternLM2Config(**llm_config)
        else:
            raise ValueError(f"Unsupported architecture: {architecture}")
        self.template = template
        self.force_image_size = force_image_size
        self.downsample_ratio = downsample_ratio
        self.ps_version = ps_version
        self.dynamic_image_size = dynamic_image_size
        self.use_thumbnail = use_thumbnail
        self.min_dynamic_patch = min_dynamic_patch
        self.max_dynamic_patch = max_dynamic_patch
        self.select_layer = select_layer
        super().__init__(**kwargs)

    def to_dict(self):
        out = super().to_dict()
        out["llm_config"] = self.llm_config.to_dict()
        return out
