"""Chat templates the runner falls back on when a GGUF file carries none."""

from __future__ import annotations

# ChatML, as SmolLM2, Qwen and many others use it: the usual format of a model without a template.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
