"""A tiny, randomly initialised GLM-4.5V-architecture checkpoint.

No GPU and no real weights are available in CI, yet the processor, the vision
tower, the MoE text model, decoding and `transformers serve` must all run for
real. This builds such a checkpoint in a few seconds: random weights (a few
hundred thousand parameters), a byte-level tokenizer carrying GLM's special
tokens, our own chat template and the real GLM-4V processor classes.
"""

from __future__ import annotations

import json
from pathlib import Path

# Same order as GLM-4.5V's added tokens (151329...151364 there), so the
# relative layout of the config's special ids matches the real model.
SPECIAL_TOKENS = [
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
    "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>",
    "<|begin_of_audio|>", "<|end_of_audio|>", "<|begin_of_transcription|>", "<|end_of_transcription|>",
    "<|code_prefix|>", "<|code_middle|>", "<|code_suffix|>",
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>", "/nothink",
    "<|begin_of_box|>", "<|end_of_box|>", "<|image|>", "<|video|>",
]
# Kept in decoded text even with skip_special_tokens=True (servers such as
# `transformers serve` decode that way; the parser needs boxes and think tags).
VISIBLE_TOKENS = {
    "<think>", "</think>", "<|begin_of_box|>", "<|end_of_box|>", "<tool_call>", "</tool_call>",
    "<tool_response>", "</tool_response>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>", "/nothink",
}
BYTE_VOCAB = 256
VOCAB_SIZE = 320  # 256 bytes + 36 added tokens, padded

CHAT_TEMPLATE = (
    "[gMASK]<sop>"
    "{%- for m in messages -%}"
    "<|{{ m.role }}|>{{ '\\n' }}"
    "{%- if m.content is string -%}{{ m.content }}"
    "{%- else -%}{%- for part in m.content -%}"
    "{%- if part.type == 'image' or part.type == 'image_url' -%}<|begin_of_image|><|image|><|end_of_image|>"
    "{%- elif part.type == 'video' -%}<|begin_of_video|><|video|><|end_of_video|>"
    "{%- elif part.type == 'text' -%}{{ part.text }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{{ '\\n' }}"
    "{%- if enable_thinking is defined and not enable_thinking -%}<think></think>{{ '\\n' }}{%- endif -%}"
    "{%- endif -%}"
)


def _byte_alphabet() -> list[str]:
    """The printable stand-in character for each byte 0..255 (byte-level BPE convention)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _build_tokenizer():
    """A byte-level tokenizer: every byte is one token, GLM's markers are single tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(_byte_alphabet())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    for name in SPECIAL_TOKENS:
        added = AddedToken(name, special=name not in VISIBLE_TOKENS, normalized=False)
        tok.add_tokens([added]) if name in VISIBLE_TOKENS else tok.add_special_tokens([added])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", padding_side="left"
    )


def _build_config(tokenizer):
    """Glm4vMoeConfig scaled down: 2 text layers (one dense, one MoE), 1 vision block."""
    from transformers import Glm4vMoeConfig

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    eos = [ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"]]
    text = dict(
        vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, moe_intermediate_size=32, n_routed_experts=4,
        num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1, max_position_embeddings=65536,
        # head_dim 16 * partial_rotary_factor 0.5 = rotary dim 8; mrope_section sums to half of it.
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                         "mrope_section": [1, 1, 2]},
        eos_token_id=eos, pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=64,
                  image_size=336, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    return Glm4vMoeConfig(
        text_config=text, vision_config=vision,
        image_token_id=ids["<|image|>"], video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"], image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"], video_end_token_id=ids["<|end_of_video|>"],
        eos_token_id=eos, pad_token_id=ids["<|endoftext|>"],
    ), eos


def build_tiny_checkpoint(out_dir: Path, *, seed: int = 0) -> Path:
    """Write model, tokenizer, processor and chat template to ``out_dir``; return it.

    The same seed gives byte-identical weights.
    """
    import torch
    from transformers import (
        Glm4vImageProcessor, Glm4vMoeForConditionalGeneration, Glm4vProcessor, Glm4vVideoProcessor,
        GenerationConfig,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer()
    config, eos = _build_config(tokenizer)
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(seed)
        model = Glm4vMoeForConditionalGeneration(config).to(torch.float32).eval()  # type: ignore[arg-type]
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=16
    )
    model.save_pretrained(out_dir)
    processor = Glm4vProcessor(
        image_processor=Glm4vImageProcessor(), tokenizer=tokenizer,
        video_processor=Glm4vVideoProcessor(), chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)
    (out_dir / "deskpilot_tiny.json").write_text(json.dumps({"seed": seed, "note": "random weights"}) + "\n")
    return out_dir


def parameter_count(model) -> int:
    """Number of parameters of a loaded model (for reports and tests)."""
    return sum(p.numel() for p in model.parameters())
