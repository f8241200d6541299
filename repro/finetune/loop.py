"""What every trainer shares: the optimiser and schedule of Section 3.1, gradient clipping,
torchrun (DDP with gloo on CPU or NCCL on GPU, FSDP as an option), and checkpoints in
safetensors that carry optimiser, scheduler and RNG state so a resumed run continues the
same loss curve.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, cast

import torch
from torch import nn

from paperkb.errors import PaperkbError

if TYPE_CHECKING:
    from repro.llama.model import Transformer


@dataclass
class OptimConfig:
    """Section 3.1: "a cosine learning rate schedule, with an initial learning rate of 2e-5,
    a weight decay of 0.1, a batch size of 64, and a sequence length of 4096"; AdamW β
    0.9/0.95, eps 1e-5 and clipping 1.0 as in pretraining (Section 2.2)."""

    lr: float = 2e-5
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-5
    weight_decay: float = 0.1
    clip: float = 1.0
    warmup_steps: int = 0
    total_steps: int = 100
    min_lr_ratio: float = 0.1  # the cosine ends at 10% of the peak, as in pretraining


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW; matrices decay, gains and biases do not (usual practice)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), eps=cfg.eps)


def cosine_with_warmup(step: int, cfg: OptimConfig) -> float:
    """The learning-rate multiplier at ``step``: linear warmup, then cosine to min_lr_ratio."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_with_warmup(s, cfg))


def step_optimizer(model: nn.Module, optimizer, scheduler, clip: float) -> float:
    """Clip, step, advance the schedule; returns the gradient norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


# ---------------------------------------------------------------------------------------
# Distributed
# ---------------------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def on(self) -> bool:
        return self.world > 1

    def shard(self, items: list) -> list:
        """This rank's contiguous slice of a global batch (sizes must divide evenly)."""
        if len(items) % self.world:
            raise PaperkbError(f"a global batch of {len(items)} does not split over {self.world} processes")
        n = len(items) // self.world
        return items[self.rank * n : (self.rank + 1) * n]

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.on:
            import torch.distributed as dist

            x = x.clone()
            dist.all_reduce(x)
        return x


def init_distributed() -> Dist:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else one process. NCCL
    when CUDA is present, gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(0, 1, "cuda" if torch.cuda.is_available() and os.environ.get("PAPERKB_CUDA") else "cpu")
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Dist(rank, world, device)


def wrap(model: nn.Module, d: Dist, strategy: str = "ddp") -> nn.Module:
    """DDP (gradients averaged over processes) or FSDP (parameters sharded, for models that
    do not fit one GPU); the bare model in one process."""
    if not d.on:
        return model
    if strategy == "fsdp":
        if d.device == "cpu":
            raise PaperkbError(
                "FSDP needs GPUs (torch shards parameters over accelerator devices); use --strategy ddp on CPUs"
            )
        from torch.distributed.fsdp import FullyShardedDataParallel

        return FullyShardedDataParallel(model)
    if strategy != "ddp":
        raise PaperkbError(f"unknown strategy {strategy!r} (ddp or fsdp)")
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


# ---------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------
STATE_FILE = "trainer_state.json"
OPTIM_FILE = "optimizer.safetensors"
MODEL_FILE = "trainer_model.safetensors"


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    optimizer,
    scheduler,
    step: int,
    extra: Optional[dict] = None,
    generator: Optional[torch.Generator] = None,
) -> Path:
    """Everything needed to continue: the model's own state dict and the optimiser's
    tensors (safetensors), the scheduler, step, RNG states and ``extra`` (JSON)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = unwrap(model)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(directory / MODEL_FILE))
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in opt["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{pid}.{key}"] = val.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{key}"] = val
    tensors["rng.torch"] = torch.get_rng_state()
    if generator is not None:
        tensors["rng.generator"] = generator.get_state()
    save_file(tensors, str(directory / OPTIM_FILE))
    py_state = random.getstate()
    state = {
        "step": step,
        "param_groups": opt["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "python_rng": [py_state[0], list(py_state[1]), py_state[2]],
        "extra": extra or {},
    }
    (directory / STATE_FILE).write_text(json.dumps(state, default=_jsonable) + "\n")
    return directory


def _jsonable(x):
    if isinstance(x, tuple):
        return list(x)
    if torch.is_tensor(x):
        return x.tolist()
    raise TypeError(type(x).__name__)


def load_checkpoint(
    directory: str | Path, model: nn.Module, optimizer, scheduler, generator: Optional[torch.Generator] = None
) -> dict:
    """Restore what :func:`save_checkpoint` wrote, in place; returns the state (step, extra)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / STATE_FILE).is_file():
        raise PaperkbError(f"{directory}: no {STATE_FILE}; not a checkpoint to resume from")
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    except ValueError as exc:
        raise PaperkbError(f"{directory / STATE_FILE}: bad JSON ({exc})") from None
    unwrap(model).load_state_dict(load_file(str(directory / MODEL_FILE)))
    tensors = load_file(str(directory / OPTIM_FILE))
    per_param: dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("rng."):
            continue
        pid, key = name.split(".", 1)
        per_param.setdefault(int(pid), {})[key] = val
    for name, val in state["optimizer_scalars"].items():
        pid, key = name.split(".", 1)
        per_param.setdefault(int(pid), {})[key] = val
    optimizer.load_state_dict({"state": per_param, "param_groups": state["param_groups"]})
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    if generator is not None and "rng.generator" in tensors:
        generator.set_state(tensors["rng.generator"])
    v, internal, gauss = state["python_rng"]
    random.setstate((v, tuple(internal), gauss))
    return state


def export_for_chat(directory: str | Path, model, tokenizer) -> Path:
    """A Hugging Face layout folder (config.json + safetensors + tokenizer) that
    ``paperkb chat`` and transformers can open."""
    from repro.llama.weights import save_hf

    directory = Path(directory)
    save_hf(cast("Transformer", unwrap(model)), directory)  # the chat model: a Transformer once unwrapped
    tokenizer.save(directory)
    return directory


def train_steps(
    model: nn.Module,
    step_loss,
    cfg: OptimConfig,
    steps: int,
    d: Optional[Dist] = None,
    *,
    start_step: int = 0,
    state: Optional[tuple] = None,
    on_step=None,
    checkpoint_dir: Optional[str | Path] = None,
    checkpoint_at: Optional[int] = None,
) -> tuple:
    """The loop every gradient-based trainer uses. ``step_loss(model, step)`` returns (loss
    to backpropagate on this process, dict of global metrics); data for a step must depend
    only on the step number (so a resumed run sees the same batches). ``state`` is an
    (optimizer, scheduler) pair to continue with. Returns (optimizer, scheduler)."""
    d = d or Dist()
    optimizer, scheduler = state if state is not None else (make_optimizer(unwrap(model), cfg), None)
    if scheduler is None:
        scheduler = make_scheduler(optimizer, cfg)
    model.train()
    for step in range(start_step, steps):
        loss, metrics = step_loss(model, step)
        loss.backward()
        metrics["grad_norm"] = step_optimizer(model, optimizer, scheduler, cfg.clip)
        metrics["lr"] = scheduler.get_last_lr()[0]
        if on_step is not None:
            on_step(step, metrics)
        if checkpoint_dir is not None and checkpoint_at is not None and step + 1 == checkpoint_at:
            if d.rank == 0:
                save_checkpoint(checkpoint_dir, model, optimizer, scheduler, step + 1)
    return optimizer, scheduler


def step_rng(seed: int, step: int, salt: int = 0) -> random.Random:
    """The data sampler of one step: a function of (seed, step) only, so resuming at step s
    draws exactly the batches the uninterrupted run drew."""
    return random.Random((seed * 1_000_003 + step) * 7919 + salt)
