"""GLM-4.5V-architecture checkpoints run in process with transformers (CPU development, tests).

torch and transformers are imported only when a backend is created, so the
rest of deskpilot installs and imports without the [transformers] extra.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from deskpilot.model_backend.base import BackendError
from deskpilot.model_backend.reasoning import split_reasoning
from deskpilot.model_backend.types import ChatRequest, ImagePart, Reply, Usage

INSTALL_HINT = "pip install 'deskpilot[transformers]'"


def _import_stack():
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise BackendError(f"the transformers backend needs {exc.name}: {INSTALL_HINT}") from None
    return torch, transformers


def processor_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """ChatRequest -> the message format of `processor.apply_chat_template`."""
    out = []
    for msg in request.messages:
        parts = [{"type": "image", "image": p.image.convert("RGB")} if isinstance(p, ImagePart)
                 else {"type": "text", "text": p.text} for p in msg.content]
        out.append({"role": msg.role, "content": parts})
    return out


class TransformersBackend:
    """Loads the checkpoint once; one generate at a time (a lock), replies like a server would."""

    def __init__(self, model_path: str | Path, *, device: str = "cpu", dtype: str = "auto",
                 max_new_tokens: int | None = None):
        torch, transformers = _import_stack()
        path = Path(model_path)
        if path.exists() and not (path / "config.json").is_file():
            raise BackendError(f"no checkpoint at {path} (config.json missing)")
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype, None)
        if torch_dtype is None:
            raise BackendError(f"unknown dtype '{dtype}': use auto, float32, bfloat16 or float16")
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(str(model_path))
            model = transformers.AutoModelForImageTextToText.from_pretrained(str(model_path), dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load checkpoint '{model_path}': {str(exc).splitlines()[0][:200]}") from None
        self.model = model.to(device).eval()
        self.model_name = str(model_path)
        self.device, self.max_new_tokens = device, max_new_tokens
        self._torch = torch
        self._lock = threading.Lock()
        gen = self.model.generation_config
        eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
        self._stop_ids = {i for i in (*eos, gen.pad_token_id) if i is not None}

    def encode(self, request: ChatRequest):
        """The processor's tensors for a request (input_ids, pixel_values, ...)."""
        return self.processor.apply_chat_template(
            processor_messages(request), add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", enable_thinking=request.thinking,
        ).to(self.device)

    def _gen_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        limit = request.max_tokens if self.max_new_tokens is None else min(request.max_tokens, self.max_new_tokens)
        kw: dict[str, Any] = {"max_new_tokens": limit, "do_sample": bool(request.temperature)}
        if kw["do_sample"]:
            kw["temperature"] = request.temperature
            if request.top_p is not None:
                kw["top_p"] = request.top_p
        if request.stop:
            kw.update(stop_strings=request.stop, tokenizer=self.processor.tokenizer)
        return kw

    def complete(self, request: ChatRequest) -> Reply:
        started = time.perf_counter()
        inputs = self.encode(request)
        prompt_len = inputs["input_ids"].shape[1]
        with self._lock, self._torch.inference_mode():
            out = self.model.generate(**inputs, **self._gen_kwargs(request))
        new = out[0][prompt_len:].tolist()
        stopped = bool(new) and new[-1] in self._stop_ids
        kept = [t for t in new if t not in self._stop_ids]
        text = self.processor.tokenizer.decode(kept, skip_special_tokens=False)
        reasoning, content = split_reasoning(text)
        return Reply(
            content=content, reasoning=reasoning, model=self.model_name,
            usage=Usage(prompt_tokens=prompt_len, completion_tokens=len(new), total_tokens=prompt_len + len(new)),
            latency_ms=(time.perf_counter() - started) * 1000, finish_reason="stop" if stopped else "length",
        )

    async def acomplete(self, request: ChatRequest) -> Reply:
        return await asyncio.to_thread(self.complete, request)

    def close(self) -> None:
        self.model = None
