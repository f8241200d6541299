"""Issue 23, item 13: a hostile checkpoint folder (config.json, index, safetensors header)
is refused in one line before anything is built, and never exhausts memory."""

from __future__ import annotations

import json
import resource
import shutil
import struct
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from paperkb.errors import PaperkbError  # noqa: E402
from repro.llama.model import ModelArgs, Transformer  # noqa: E402
from repro.llama.weights import INDEX_NAME, SINGLE_NAME, load_hf, load_meta, save_hf  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = Transformer(ModelArgs(dim=16, n_layers=1, n_heads=2, vocab_size=40, max_seq_len=32, multiple_of=16))
    return save_hf(model, tmp_path_factory.mktemp("ckpt") / "hf")


def variant(tiny: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny, folder)
    return folder


def edit_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


CONFIGS = [
    ({"max_position_embeddings": 10**9}, "max_position_embeddings"),
    ({"max_position_embeddings": 1e30}, "max_position_embeddings must be a whole number"),
    ({"max_position_embeddings": -5}, "max_position_embeddings -5 is outside"),
    ({"hidden_size": "abc"}, "hidden_size must be a whole number"),
    ({"num_hidden_layers": 2.5}, "num_hidden_layers must be a whole number"),
    ({"num_hidden_layers": 200_000}, "num_hidden_layers 200000 is outside"),
    ({"num_attention_heads": 0}, "num_attention_heads 0 is outside"),
    ({"num_attention_heads": 3}, "not a multiple of the 3 heads"),
    ({"num_key_value_heads": 3, "num_attention_heads": 2}, "key/value heads"),
    ({"hidden_size": 8192, "head_dim": 4096, "intermediate_size": 1 << 20, "num_hidden_layers": 1024}, "memory"),
    ({"rms_norm_eps": float("nan")}, "rms_norm_eps must be a number"),
    ({"vocab_size": True}, "vocab_size must be a whole number"),
]


@pytest.mark.parametrize("changes, words", CONFIGS, ids=[str(c) for c, _ in CONFIGS])
def test_hostile_config_values_are_one_line_errors(tiny, tmp_path, changes, words):
    folder = variant(tiny, tmp_path)
    edit_config(folder, **changes)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(PaperkbError, match="config.json") as err:
        load_hf(folder)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB


@pytest.mark.parametrize(
    "text, words",
    [
        ("[1, 2]", "expected a JSON object, not a list"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("{bad", "bad JSON"),
        ("x" * 2_000_000, "over the 1,000,000-byte limit"),
    ],
)
def test_config_files_that_are_not_objects(tiny, tmp_path, text, words):
    folder = variant(tiny, tmp_path)
    (folder / "config.json").write_text(text)
    with pytest.raises(PaperkbError, match=words):
        load_hf(folder)


def test_max_memory_refuses_what_the_machine_could_hold(tiny, tmp_path):
    from repro.llama.checkpoint_check import model_bytes

    folder = variant(tiny, tmp_path)
    args = ModelArgs(dim=16, n_layers=1, n_heads=2, vocab_size=40, max_seq_len=32, multiple_of=16)
    n_params = sum(p.numel() for p in Transformer(args).parameters())
    assert n_params * 4 <= model_bytes(args) < n_params * 4 + 64_000  # parameters + rotary table + KV cache
    with pytest.raises(PaperkbError, match="max-memory"):
        load_hf(folder, max_memory=1000)


def _header(folder: Path) -> tuple[dict, bytes]:
    data = (folder / SINGLE_NAME).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _write(folder: Path, header: dict | bytes, body: bytes, length: int | None = None) -> None:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    (folder / SINGLE_NAME).write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + body)


def test_bad_safetensors_headers_and_index_maps(tiny, tmp_path):
    folder = variant(tiny, tmp_path)
    header, body = _header(folder)
    name = next(k for k in header if k != "__metadata__")
    cases = [
        (lambda: _write(folder, header, body, length=1 << 60), "header length"),
        (lambda: _write(folder, b"[1,2]", body), "not a table of tensors"),
        (lambda: _write(folder, b"{" * 5000, body), "not JSON"),
        (lambda: _write(folder, {**header, name: {**header[name], "dtype": "X9"}}, body), "unknown dtype"),
        (
            lambda: _write(folder, {**header, name: {**header[name], "data_offsets": [0, 1 << 40]}}, body),
            "does not fit",
        ),
        (lambda: _write(folder, {**header, name: {**header[name], "shape": [-1]}}, body), "bad shape"),
    ]
    for make, words in cases:
        make()
        with pytest.raises(PaperkbError, match=words):
            load_hf(folder)
    # a symlinked safetensors file that leads out of the folder
    outside = tmp_path / "elsewhere.safetensors"
    _write(folder, header, body)
    (folder / SINGLE_NAME).rename(outside)
    (folder / SINGLE_NAME).symlink_to(outside)
    with pytest.raises(PaperkbError, match="outside the checkpoint folder"):
        load_hf(folder)
    # index maps: not a map, a path out, a list root
    (folder / SINGLE_NAME).unlink()
    for index, words in [
        ({"weight_map": [1]}, "no weight_map"),
        ({"weight_map": {name: "../x.safetensors"}}, "not a file of this folder"),
        ([1], "not a list"),
    ]:
        (folder / INDEX_NAME).write_text(json.dumps(index))
        with pytest.raises(PaperkbError, match=words):
            load_hf(folder)


def test_meta_params_are_checked_too(tmp_path):
    folder = tmp_path / "meta"
    folder.mkdir()
    torch.save({"tok_embeddings.weight": torch.zeros(4, 4)}, folder / "consolidated.00.pth")
    for params, words in [
        ({"dim": 4096, "n_layers": 200_000, "n_heads": 32}, "n_layers 200000 is outside"),
        ({"dim": "x", "n_layers": 1, "n_heads": 1}, "dim must be a whole number"),
        ({"dim": 8192, "n_layers": 1000, "n_heads": 64, "max_seq_len": 1 << 20}, "memory"),
    ]:
        (folder / "params.json").write_text(json.dumps(params))
        with pytest.raises(PaperkbError, match=words):
            load_meta(folder)


def test_chat_command_with_a_hostile_config_is_one_line(tiny, tmp_path):
    from typer.testing import CliRunner

    from cli.app import app

    folder = variant(tiny, tmp_path)
    edit_config(folder, num_hidden_layers=200_000)
    result = CliRunner().invoke(app, ["chat", str(folder)], input="hi\n")
    assert result.exit_code == 1 and "num_hidden_layers 200000 is outside" in result.stderr
    assert "Traceback" not in result.output and "unexpected problem" not in result.output


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_tokenizer_files_that_are_fifos_or_lead_out_are_refused(tiny, tmp_path):
    import os

    from repro.llama.chat import load_checkpoint

    folder = variant(tiny, tmp_path)
    os.mkfifo(folder / "tokenizer.json")
    with pytest.raises(PaperkbError, match="not a regular file"):
        load_checkpoint(folder)
    (folder / "tokenizer.json").unlink()
    (tmp_path / "far.json").write_text("{}")
    (folder / "tokenizer.json").symlink_to(tmp_path / "far.json")
    with pytest.raises(PaperkbError, match="outside the checkpoint folder"):
        load_checkpoint(folder)
