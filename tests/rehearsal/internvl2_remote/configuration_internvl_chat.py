"""Stand-in for InternVL2-2B's remote ``configuration_internvl_chat.py`` in the CPU rehearsal of the full track.

Written for the course (not InternVL's code): it keeps the interface the labs touch (``InternVLChatConfig`` with
``vision_config``, ``llm_config``, ``template``, the tiling settings) at a size that runs in a second on a CPU.
"""

from transformers import PretrainedConfig


class InternLM2Config(PretrainedConfig):
    model_type = "internlm2"

    def __init__(self, vocab_size=512, hidden_size=32, num_hidden_layers=1, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
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
        self.llm_config = InternLM2Config(**(llm_config or {}))
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
