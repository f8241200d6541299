"""A scalar head on the Llama backbone: the reward model of Section 3.2.2 ("the
classification head for next-token prediction is replaced with a regression head that
outputs a scalar reward") and PPO's value head."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from repro.llama.chat import SCORE_HEAD_FILE
from repro.llama.model import ModelArgs, Transformer


class ScalarHeadModel(nn.Module):
    """backbone (a Transformer, its ``output`` unused) + Linear(dim, 1)."""

    def __init__(self, backbone: Transformer):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.params.dim, 1)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=1.0 / (backbone.params.dim + 1) ** 0.5)

    @property
    def params(self) -> ModelArgs:
        return self.backbone.params

    def token_values(
        self, tokens: torch.Tensor, *, positions: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """A scalar at every position: tokens (B, N) -> (B, N)."""
        h = self.backbone(tokens, positions=positions, mask=mask, hidden=True)  # (B, N, dim)
        return self.head(h.float()).squeeze(-1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The score of each right-padded sequence, read at its last real token: (B,)."""
        values = self.token_values(tokens)
        return values[torch.arange(tokens.shape[0], device=tokens.device), lengths - 1]


def copy_backbone(model: Transformer) -> Transformer:
    """A fresh Transformer holding a copy of ``model``'s weights (the reward model and the
    value head start from the SFT policy, as in the paper)."""
    clone = Transformer(model.params)
    clone.load_state_dict(model.state_dict())
    return clone.to(model.output.weight.device)


HEAD_FILE = SCORE_HEAD_FILE  # the file that tells chat a folder is a reward model


def save_scalar_head_model(model: ScalarHeadModel, directory, tokenizer=None):
    """The backbone in the Hugging Face layout (with the tokenizer) plus ``score_head.safetensors``."""
    from pathlib import Path

    from safetensors.torch import save_file

    from repro.finetune.loop import export_for_chat

    directory = Path(directory)
    if tokenizer is not None:
        export_for_chat(directory, model.backbone, tokenizer)
    else:
        from repro.llama.weights import save_hf

        save_hf(model.backbone, directory)
    save_file({k: v.detach().contiguous() for k, v in model.head.state_dict().items()}, str(directory / HEAD_FILE))
    return directory


def load_scalar_head_model(directory, device: str = "cpu") -> ScalarHeadModel:
    """A reward model (or value head) written by :func:`save_scalar_head_model` or the trainer."""
    from pathlib import Path

    from safetensors.torch import load_file

    from paperkb.errors import PaperkbError
    from repro.llama.weights import load_hf

    directory = Path(directory)
    if not (directory / HEAD_FILE).is_file():
        raise PaperkbError(f"{directory}: no {HEAD_FILE}; not a reward-model checkpoint")
    model = ScalarHeadModel(load_hf(directory, device=device))
    model.head.load_state_dict(load_file(str(directory / HEAD_FILE)))
    return model.eval()
