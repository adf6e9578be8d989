"""The tiny GLM-4.5V-architecture checkpoint: deterministic, fast, loads offline with Auto classes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pytest

from backend_fixtures import offline_env, tiny_checkpoint  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def weights_hash(folder) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].numpy().tobytes())
    return h.hexdigest()


def test_same_seed_same_weights_in_seconds(tmp_path, tiny_checkpoint):
    from deskpilot.model_backend.tiny import build_tiny_checkpoint

    t = time.monotonic()
    again = build_tiny_checkpoint(tmp_path / "again", seed=0)
    assert time.monotonic() - t < 10
    other = build_tiny_checkpoint(tmp_path / "other", seed=1)
    assert weights_hash(again) == weights_hash(tiny_checkpoint)
    assert weights_hash(other) != weights_hash(tiny_checkpoint)
    assert (again / "tokenizer.json").read_bytes() == (tiny_checkpoint / "tokenizer.json").read_bytes()


def test_config_carries_the_tokenizers_special_ids(tiny_checkpoint):
    from transformers import AutoTokenizer

    cfg = json.loads((tiny_checkpoint / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(tiny_checkpoint))
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in [
        ("image_token_id", "<|image|>"), ("video_token_id", "<|video|>"),
        ("image_start_token_id", "<|begin_of_image|>"), ("image_end_token_id", "<|end_of_image|>"),
        ("video_start_token_id", "<|begin_of_video|>"), ("video_end_token_id", "<|end_of_video|>")]}
    assert {k: cfg[k] for k in ids} == ids
    assert cfg["architectures"] == ["Glm4vMoeForConditionalGeneration"]
    rope = cfg["text_config"]["rope_parameters"]
    head_dim = cfg["text_config"]["hidden_size"] // cfg["text_config"]["num_attention_heads"]
    assert sum(rope["mrope_section"]) * 2 == head_dim * rope["partial_rotary_factor"]
    # every GLM marker is ONE token; box and think tags survive skip_special_tokens
    text = "<think>a</think><|begin_of_box|>DONE()<|end_of_box|><|endoftext|>"
    enc = tok(text)["input_ids"]
    assert len(enc) == 1 + 1 + 1 + 1 + 6 + 1 + 1
    assert tok.decode(enc, skip_special_tokens=True) == "<think>a</think><|begin_of_box|>DONE()<|end_of_box|>"


def test_loads_offline_with_auto_classes(tiny_checkpoint, tmp_path):
    script = (
        "import sys\n"
        "from transformers import AutoModelForImageTextToText, AutoProcessor\n"
        "p = AutoProcessor.from_pretrained(sys.argv[1])\n"
        "m = AutoModelForImageTextToText.from_pretrained(sys.argv[1])\n"
        "n = sum(x.numel() for x in m.parameters())\n"
        "print(type(m).__name__, type(p).__name__, type(p.image_processor).__name__,"
        " type(p.video_processor).__name__, n)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tiny_checkpoint)], capture_output=True, text=True,
                         env=offline_env(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    model, proc, improc, vidproc, n = out.stdout.split()
    assert (model, proc, improc, vidproc) == (
        "Glm4vMoeForConditionalGeneration", "Glm4vProcessor", "Glm4vImageProcessor", "Glm4vVideoProcessor")
    assert 100_000 < int(n) < 1_000_000


def test_cli_tiny_checkpoint(tmp_path):
    import typer
    from typer.testing import CliRunner

    from deskpilot.cli.backend_cmds import tiny_checkpoint as cmd

    app = typer.Typer()
    app.command()(cmd)
    res = CliRunner().invoke(app, [str(tmp_path / "ck"), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "tiny checkpoint written to" in res.output
    assert json.loads((tmp_path / "ck" / "deskpilot_tiny.json").read_text())["seed"] == 3
    assert (tmp_path / "ck" / "model.safetensors").stat().st_size > 100_000
