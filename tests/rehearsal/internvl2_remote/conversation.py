"""Stand-in for InternVL2's remote ``conversation.py`` (course-written, not InternVL's code).

``get_conv_template(name)`` returns a template that lays out a conversation the way InternVL2's ``chat`` does for
``internlm2-chat`` (InternVL2-2B) and ``Hermes-2`` (InternVL2-1B): ChatML turns joined with ``sep = "<|im_end|>"``
and nothing between them (the "MPT" separator style).
"""

import copy
from dataclasses import dataclass, field

INTERNLM2_SYSTEM = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"


@dataclass
class Conversation:
    name: str
    system_message: str = ""
    system_template: str = "<|im_start|>system\n{system_message}"
    roles: tuple = ("<|im_start|>user\n", "<|im_start|>assistant\n")
    sep: str = "<|im_end|>"
    messages: list = field(default_factory=list)

    def append_message(self, role, message):
        self.messages.append([role, message])

    def get_prompt(self):
        out = self.system_template.format(system_message=self.system_message) + self.sep
        for role, message in self.messages:
            out += role + message + self.sep if message else role
        return out


TEMPLATES = {
    "internlm2-chat": Conversation("internlm2-chat", INTERNLM2_SYSTEM),
    "Hermes-2": Conversation("Hermes-2", INTERNLM2_SYSTEM),
}


def get_conv_template(name):
    return copy.deepcopy(TEMPLATES[name])
