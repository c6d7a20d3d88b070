"""Random-weight llama GGUF files for tests and benchmarks.

The weights are noise, so the text is gibberish, but the file has the shape, tokenizer and chat
template of a real chat model: it exercises exactly the code paths a real model does and loads in
milliseconds at the default (tiny) size. ``gguf`` is a development dependency, imported lazily.
"""

from __future__ import annotations

from pathlib import Path

from .templates import CHATML_TEMPLATE

# Same ids as SmolLM2 (ChatML): bos is <|im_start|>, eos is <|im_end|>.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def _byte_level_alphabet() -> list[str]:
    """GPT-2's reversible byte -> printable character mapping, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return [mapping[b] for b in range(256)]


def write_random_llama_gguf(
    path: str | Path,
    *,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int | None = None,
    n_ff: int | None = None,
    n_vocab: int | None = None,
    n_ctx_train: int = 4096,
    dtype: str = "f32",
    seed: int = 0,
    chat_template: str | None = CHATML_TEMPLATE,
    name: str = "random-llama",
) -> Path:
    """Write a random-weight llama model with a byte-level BPE vocabulary and return its path.

    The vocabulary is the three ChatML special tokens plus the 256 byte tokens (and one merge), so every
    text round-trips; ``n_vocab`` larger than that pads it with unreachable filler tokens (a realistic
    output-layer size for benchmarks). ``dtype`` is ``"f32"`` or ``"f16"`` for the 2-D weights;
    quantize afterwards with :func:`quantize` for a realistic file.
    """
    import gguf  # dev dependency only
    import numpy as np

    path = Path(path)
    n_head_kv = n_head_kv or n_head
    n_ff = n_ff or 4 * n_embd
    if n_embd % n_head or n_head % n_head_kv:
        raise ValueError("n_embd must be divisible by n_head, and n_head by n_head_kv")
    head_dim = n_embd // n_head
    n_embd_kv = head_dim * n_head_kv

    alphabet = _byte_level_alphabet()
    # llama.cpp refuses a BPE vocabulary without merges, so carry one merge (two NUL bytes, which
    # real text never contains) together with the token it produces.
    merged = alphabet[0] + alphabet[0]
    tokens = list(SPECIAL_TOKENS) + alphabet + [merged]
    types = [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS) + [gguf.TokenType.NORMAL] * 257
    base = len(tokens)
    n_vocab = n_vocab or base
    if n_vocab < base:
        raise ValueError(f"n_vocab must be at least {base}")
    tokens += [f"[filler{i}]" for i in range(n_vocab - base)]
    types += [gguf.TokenType.NORMAL] * (n_vocab - base)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{alphabet[0]} {alphabet[0]}"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    rng = np.random.default_rng(seed)
    np_dtype = np.float16 if dtype == "f16" else np.float32

    def mat(rows: int, cols: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(np_dtype, copy=False)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)  # norms stay f32, as llama.cpp expects

    # Embeddings get a larger scale so the random logits are spread out (less uniform noise).
    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd, 1.0))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones(n_embd))
        w.add_tensor(p + "attn_q.weight", mat(n_embd, n_embd))
        w.add_tensor(p + "attn_k.weight", mat(n_embd_kv, n_embd))
        w.add_tensor(p + "attn_v.weight", mat(n_embd_kv, n_embd))
        w.add_tensor(p + "attn_output.weight", mat(n_embd, n_embd))
        w.add_tensor(p + "ffn_norm.weight", ones(n_embd))
        w.add_tensor(p + "ffn_gate.weight", mat(n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", mat(n_embd, n_ff))
    w.add_tensor("output_norm.weight", ones(n_embd))
    w.add_tensor("output.weight", mat(n_vocab, n_embd, 0.1))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def quantize(src: str | Path, dst: str | Path, *, ftype: str = "q8_0", n_threads: int = 0) -> Path:
    """Quantize a GGUF with llama.cpp (``llama_model_quantize``); ``ftype`` is e.g. ``"q8_0"``."""
    import llama_cpp
    from llama_cpp._logger import set_verbose

    set_verbose(False)  # quantizing logs a line per tensor
    names = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
             "q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1, "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16}
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = names[ftype.lower()]
    params.nthread = n_threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed with code {rc}")
    return Path(dst)


def bench_model_params() -> dict[str, int | str]:
    """Sizes of the ~306M-parameter benchmark model described in design.md."""
    return {"n_embd": 1024, "n_layer": 16, "n_head": 16, "n_ff": 2816, "n_vocab": 49152, "dtype": "f16"}
