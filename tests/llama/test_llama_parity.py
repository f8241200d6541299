"""Same random weights, same logits as transformers' LlamaForCausalLM; checkpoints round-trip."""

from __future__ import annotations

import json

import pytest
import torch

from kb.errors import PaperkbError
from repro.llama.model import ModelArgs, Transformer
from repro.llama.weights import (
    _to_half_split, _to_interleaved, load_hf, load_meta, merge_shards, save_hf, save_meta, to_transformers,
)

transformers = pytest.importorskip("transformers")




def random_model(n_kv_heads: int, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads, vocab_size=128,
                     max_seq_len=64, multiple_of=32)
    m = Transformer(args).eval()
    with torch.no_grad():  # norms away from 1 so that a swapped norm would show
        for name, p in m.named_parameters():
            if p.ndim == 1:
                p.normal_(1.0, 0.2)
    return m


@pytest.mark.parametrize("n_kv_heads", [4, 2], ids=["mha", "gqa"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_logits_match_transformers(n_kv_heads, attn):
    m = random_model(n_kv_heads)
    hf = to_transformers(m, attn_implementation=attn)
    tokens = torch.randint(0, 128, (2, 23))
    with torch.no_grad():
        diff = (m(tokens) - hf(tokens).logits).abs().max().item()
    assert diff <= 1e-4


def test_permutation_is_needed_and_invertible():
    w = torch.randn(4 * 16, 64)
    assert torch.equal(_to_interleaved(_to_half_split(w, 4), 4), w)
    assert not torch.equal(_to_half_split(w, 4), w)
    # Without the permutation the HF model computes something else.
    m = random_model(2)
    hf = to_transformers(m)
    with torch.no_grad():
        for layer in hf.model.layers:
            layer.self_attn.q_proj.weight.copy_(_to_interleaved(layer.self_attn.q_proj.weight, 4))
        tokens = torch.randint(0, 128, (1, 12))
        assert (m(tokens) - hf(tokens).logits).abs().max() > 1e-3


@pytest.mark.parametrize("shard_bytes", [10**9, 40_000], ids=["single", "sharded"])
def test_save_then_transformers_from_pretrained(tmp_path, shard_bytes):
    from transformers import LlamaForCausalLM

    m = random_model(2)
    save_hf(m, tmp_path, max_shard_bytes=shard_bytes)
    if shard_bytes < 10**9:
        index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) > 1
    hf = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    tokens = torch.randint(0, 128, (2, 15))
    with torch.no_grad():
        ours = m(tokens)
        assert (hf(tokens).logits - ours).abs().max() <= 1e-4
        back = load_hf(tmp_path)
        assert torch.equal(back(tokens), ours)
    # transformers' own save loads back into our model too
    hf.save_pretrained(tmp_path / "hf")
    with torch.no_grad():
        assert (load_hf(tmp_path / "hf")(tokens) - ours).abs().max() <= 1e-5


def test_load_hf_dtype_and_errors(tmp_path):
    m = random_model(4)
    save_hf(m, tmp_path / "ckpt")
    assert load_hf(tmp_path / "ckpt", dtype=torch.bfloat16).output.weight.dtype == torch.bfloat16
    with pytest.raises(PaperkbError, match="config.json"):
        load_hf(tmp_path)
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    cfg["intermediate_size"] += 1
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PaperkbError, match="shape"):
        load_hf(tmp_path / "ckpt")


def test_meta_checkpoint_round_trip(tmp_path):
    m = random_model(2)
    save_meta(m, tmp_path)
    back = load_meta(tmp_path)
    tokens = torch.randint(0, 128, (1, 10))
    with torch.no_grad():
        assert torch.equal(back(tokens), m(tokens))


def test_meta_model_parallel_shards_merge(tmp_path):
    """13B and 70B come as several consolidated.NN.pth, split along fairscale's axes."""
    m = random_model(2)
    state = m.state_dict()
    split_dim = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1, "tok_embeddings": 1}
    shards = [{}, {}]
    for name, t in state.items():
        key = name.split(".")[-2]
        if key in split_dim:
            a, b = t.chunk(2, dim=split_dim[key])
            shards[0][name], shards[1][name] = a.clone(), b.clone()
        else:
            shards[0][name] = shards[1][name] = t.clone()
    merged = merge_shards(shards)
    assert all(torch.equal(merged[k], state[k]) for k in state)
    save_meta(m, tmp_path)
    for i, s in enumerate(shards):
        torch.save(s, tmp_path / f"consolidated.{i:02d}.pth")
    params = json.loads((tmp_path / "params.json").read_text())
    params["vocab_size"] = -1  # as in Meta's params.json
    (tmp_path / "params.json").write_text(json.dumps(params))
    with torch.no_grad():
        tokens = torch.randint(0, 128, (1, 10))
        assert torch.equal(load_meta(tmp_path)(tokens), m(tokens))


def test_load_leaves_no_meta_tensors(tmp_path):
    save_hf(random_model(2), tmp_path)
    m = load_hf(tmp_path)
    assert not any(t.is_meta for t in list(m.parameters()) + list(m.buffers()))
    assert not m.freqs_cis.is_meta and m.freqs_cis.is_complex()


def test_loading_initialises_no_real_weights(tmp_path, monkeypatch):
    """Built on the meta device, then the file's tensors are adopted: no second copy."""
    save_hf(random_model(2), tmp_path)
    save_meta(random_model(2), tmp_path / "meta")
    import torch.nn.init as init

    for name in ("kaiming_uniform_", "normal_", "ones_"):
        original = getattr(init, name)

        def guard(*a, _original=original, **k):
            t = a[0] if a else k["tensor"]
            assert t.is_meta, "a real tensor was initialised while loading"
            return _original(*a, **k)

        monkeypatch.setattr(init, name, guard)
    load_hf(tmp_path)
    load_meta(tmp_path / "meta")
    with pytest.raises(AssertionError):
        Transformer(random_model(2).params)  # the guard does fire on a normal build
