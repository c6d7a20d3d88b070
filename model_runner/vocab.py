"""A model's tokenizer and chat template through llama.cpp's C API (ctypes, no Python tokenizer)."""

from __future__ import annotations

import ctypes
from typing import Any

from .templates import CHATML_TEMPLATE


class LlamaVocab:
    """Tokens in and out of one loaded model. Only the runner's worker thread uses it."""

    def __init__(self, lc: Any, model: Any, *, chat_template: str | None = None) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._lc = lc
        self._model = model
        self._vocab = lc.llama_model_get_vocab(model)
        self.n_vocab: int = lc.llama_vocab_n_tokens(self._vocab)
        self.eog_tokens = [t for t in range(self.n_vocab) if lc.llama_vocab_is_eog(self._vocab, t)]
        self._piece_buf = ctypes.create_string_buffer(256)
        # The file's own template, else ChatML (the common format of models shipped without one).
        self.chat_template: str = chat_template or self.meta_str("tokenizer.chat_template") or CHATML_TEMPLATE
        bos, eos = lc.llama_vocab_bos(self._vocab), lc.llama_vocab_eos(self._vocab)
        self._formatter = Jinja2ChatFormatter(
            template=self.chat_template,
            eos_token=self.token_text(eos) if eos >= 0 else "",
            bos_token=self.token_text(bos) if bos >= 0 else "",
            add_generation_prompt=True,
        )

    def meta_str(self, key: str) -> str | None:
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._lc.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def token_text(self, token: int) -> str:
        raw = self._lc.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def is_eog(self, token: int) -> bool:
        return bool(self._lc.llama_vocab_is_eog(self._vocab, token))

    def tokenize(self, data: bytes, *, add_special: bool, parse_special: bool) -> list[int]:
        lc = self._lc
        n_max = len(data) + 16
        while True:
            buf = (lc.llama_token * n_max)()
            n = lc.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
            if n >= 0:
                return list(buf[:n])
            n_max = -n

    def piece(self, token: int) -> bytes:
        """The bytes of one token (a UTF-8 character may span several tokens)."""
        n = self._lc.llama_token_to_piece(self._vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        if n < 0:
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self._vocab, token, self._piece_buf, -n, 0, False)
        return self._piece_buf.raw[:n]

    def prompt(self, messages: list[dict[str, str]]) -> tuple[list[int], tuple[str, ...]]:
        """The conversation formatted by the chat template, as tokens, and the template's stop strings."""
        formatted = self._formatter(messages=messages)
        tokens = self.tokenize(formatted.prompt.encode("utf-8"), add_special=not formatted.added_special,
                               parse_special=True)
        stop = formatted.stop
        stops = tuple(s for s in ([stop] if isinstance(stop, str) else (stop or [])) if s)
        return tokens, stops
