"""Compile the Triton kernels for an NVIDIA GPU without one, exactly as the JIT would.

The launchers are run with CPU tensors of a realistic shape and their launch is
captured instead of executed; each captured launch is then bound by Triton's own
argument binder for the target architecture, which applies the JIT's specialisation
(integer arguments equal to 1 become constants, pointers and integers divisible by 16
get ``tt.divisibility = 16``), and compiled down to a cubin with the launch's tile
configuration (the deterministic fallback, the first of the pruned autotuning space).

What comes back per kernel: registers per thread and the stack frame (local memory a
thread spills to) read from the cubin's ``.nv.info`` attributes (EIATTR_REGCOUNT and
EIATTR_FRAME_SIZE; our kernels use no local arrays, so a non-zero frame is a spill),
plus the spill store/load bytes of ``ptxas -v`` when this compile ran ptxas (not on a
Triton cache hit); shared memory (the launch's dynamic shared memory from the compiled
metadata); and the TTGIR and PTX text, so a test can look for 32-bit products of a
batch or head stride. Needs triton imported without ``TRITON_INTERPRET=1`` and its
bundled ptxas; no GPU, no CUDA driver.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
from dataclasses import dataclass, field

import torch

KERNELS = ("forward", "backward_dkdv", "backward_dq", "decode")
_KIND_TO_NAME = {"fwd": "forward", "bwd_dkdv": "backward_dkdv", "bwd_dq": "backward_dq"}


@dataclass
class CompiledKernel:
    name: str
    arch: int
    dtype: str
    head_dim: int
    causal: bool
    config: dict
    registers: int
    frame_bytes: int
    spill_stores: int | None  # from ptxas -v; None on a Triton cache hit
    spill_loads: int | None
    shared_bytes: int
    ttgir: str = field(repr=False)
    ptx: str = field(repr=False)
    stride_args: dict = field(default_factory=dict, repr=False)  # batch/head stride names -> TTGIR value

    @property
    def spills(self) -> bool:
        return self.frame_bytes > 0 or bool(self.spill_stores) or bool(self.spill_loads)

    def row(self) -> dict:
        return dict(
            kernel=self.name,
            arch=f"sm_{self.arch}{'a' if self.arch >= 90 else ''}",
            dtype=self.dtype,
            d=self.head_dim,
            causal=self.causal,
            tile=f"{self.config['BLOCK_M']}x{self.config['BLOCK_N']}",
            warps=self.config["num_warps"],
            stages=self.config["num_stages"],
            registers=self.registers,
            stack_bytes=self.frame_bytes,
            shared_kib=round(self.shared_bytes / 1024, 1),
        )


def _capture_launches(
    tk,
    dtype: torch.dtype,
    head_dim: int,
    causal: bool,
    dropout_p: float,
    sparse: bool,
    n: int,
    batch: int,
    heads: int,
    heads_kv: int,
) -> list[tuple]:
    """Run the launchers on CPU tensors, recording (kernel, kind, args, consts, cfg)."""
    launches = []

    def capture(kernel, kind, grid_of, args, consts, device, block_d, dt, sparse_block, length=0):
        space = tk.config_space(
            "fwd" if kind == "fwd" else "bwd", _ARCH[0], block_d, dt, sparse_block, bool(consts.get("DROPOUT"))
        )
        launches.append((kernel, kind, args, consts, space[0]))

    q = torch.zeros(batch, heads, n, head_dim, dtype=dtype)
    k = torch.zeros(batch, heads_kv, n, head_dim, dtype=dtype)
    v = torch.zeros_like(k)
    mask = None
    if sparse:
        nb = -(-n // 128)
        mask = torch.ones(batch, heads, nb, nb, dtype=torch.bool)
    saved = tk._launch, tk._check
    tk._launch, tk._check = capture, (lambda q_: None)
    try:
        out, lse = tk.attention_forward(q, k, v, causal, 0.1, dropout_p, 1, mask, 128)
        out = torch.zeros(batch, heads, n, head_dim, dtype=dtype)
        lse = torch.zeros(batch, heads, n, dtype=torch.float32)
        tk.attention_backward(torch.zeros_like(out), q, k, v, out, lse, causal, 0.1, dropout_p, 1, mask, 128)
    finally:
        tk._launch, tk._check = saved
    return launches


_ARCH = [90]  # the architecture the capture hook resolves configs for


def _decode_launch(tk, dtype, head_dim, causal, n, batch, heads, heads_kv):
    """The decode kernel's launch (captured the same way, via its ``[grid]`` call)."""
    launches = []

    class Grab:
        def __getitem__(self, grid):
            def run(*args, **kwargs):
                cfg = {k: kwargs.pop(k) for k in ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages")}
                launches.append((tk._decode_kernel, "decode", args, kwargs, cfg))

            return run

    q = torch.zeros(batch, heads, 1, head_dim, dtype=dtype)
    k = torch.zeros(batch, heads_kv, n, head_dim, dtype=dtype)
    saved = tk._decode_kernel, tk._check
    tk._decode_kernel, tk._check = Grab(), (lambda q_: None)
    try:
        tk.split_kv_attention(q, k, torch.zeros_like(k), causal, n_splits=4)
    finally:
        tk._decode_kernel, tk._check = saved
    kernel, kind, args, consts, cfg = launches[0]
    return (saved[0], kind, args, consts, cfg)


def _compile(fn, args, consts: dict, cfg: dict, arch: int):
    """Bind and compile one launch for ``arch`` the way ``JITFunction.run`` does."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    kwargs = dict(
        consts,
        BLOCK_M=cfg["BLOCK_M"],
        BLOCK_N=cfg["BLOCK_N"],
        num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"],
        debug=False,
    )
    bound_args, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound_args, specialization, options)
    src = ASTSource(fn, signature, constexprs, attrs)
    log = io.StringIO()
    saved = knobs.nvidia.dump_ptxas_log
    knobs.nvidia.dump_ptxas_log = True
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(src, target=target, options=options.__dict__)
    finally:
        knobs.nvidia.dump_ptxas_log = saved
    return compiled, log.getvalue(), signature


def parse_ptxas_log(text: str) -> dict:
    """Spill bytes from ``ptxas -v`` output (None for each when there is no output)."""
    stores = re.findall(r"(\d+) bytes spill stores", text)
    loads = re.findall(r"(\d+) bytes spill loads", text)
    if not stores:
        return dict(spill_stores=None, spill_loads=None)
    return dict(spill_stores=sum(map(int, stores)), spill_loads=sum(map(int, loads)))


_EIATTR_REGCOUNT, _EIATTR_FRAME_SIZE = 0x2F, 0x11


def _elf_sections(blob: bytes) -> dict[str, bytes]:
    """Section name -> contents of a 64-bit little-endian ELF file (a cubin)."""
    (shoff,) = struct.unpack_from("<Q", blob, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", blob, 0x3A)
    heads = [struct.unpack_from("<IIQQQQ", blob, shoff + i * shentsize) for i in range(shnum)]
    str_off = heads[shstrndx][4]
    out = {}
    for name, _typ, _flags, _addr, off, size in heads:
        end = blob.index(b"\0", str_off + name)
        out[blob[str_off + name : end].decode()] = blob[off : off + size]
    return out


def cubin_resources(cubin: bytes) -> dict:
    """Registers per thread and stack frame bytes of the (one) kernel in a cubin, from
    its .nv.info attributes (format 0x04: a u16 size, then a u32 function index and the
    u32 value)."""
    regs = frame = None
    for name, data in _elf_sections(cubin).items():
        if not name.startswith(".nv.info"):
            continue
        i = 0
        while i + 2 <= len(data):
            fmt, attr = data[i], data[i + 1]
            if fmt == 0x04:
                (size,) = struct.unpack_from("<H", data, i + 2)
                if attr in (_EIATTR_REGCOUNT, _EIATTR_FRAME_SIZE) and size == 8:
                    value = struct.unpack_from("<I", data, i + 8)[0]
                    if attr == _EIATTR_REGCOUNT:
                        regs = max(regs or 0, value)
                    else:
                        frame = max(frame or 0, value)
                i += 4 + size
            elif fmt == 0x03:
                i += 4
            elif fmt == 0x01:
                i += 2
            else:
                break
    if regs is None:
        raise RuntimeError("the cubin carries no register count (EIATTR_REGCOUNT)")
    return dict(registers=regs, frame_bytes=frame or 0)


BATCH_HEAD_STRIDES = re.compile(r"^stride_\w+?[bh]$")


def compile_configuration(
    arch: int = 90,
    dtype: torch.dtype = torch.bfloat16,
    head_dim: int = 128,
    causal: bool = True,
    dropout_p: float = 0.0,
    sparse: bool = False,
    kernels: tuple[str, ...] = KERNELS,
    n: int = 1024,
    batch: int = 2,
    heads: int = 4,
    heads_kv: int = 4,
) -> list[CompiledKernel]:
    """Compile the chosen kernels for one (arch, dtype, head dim, causal) configuration."""
    from repro.attention.api import load_triton_kernels

    tk = load_triton_kernels()
    if tk.INTERPRETED:
        raise RuntimeError("compiling for a GPU needs triton imported without TRITON_INTERPRET=1")
    _ARCH[0] = arch
    launches = _capture_launches(tk, dtype, head_dim, causal, dropout_p, sparse, n, batch, heads, heads_kv)
    if "decode" in kernels:
        launches.append(_decode_launch(tk, dtype, head_dim, causal, n, batch, heads, heads_kv))
    results = []
    for fn, kind, args, consts, cfg in launches:
        name = _KIND_TO_NAME.get(kind, kind)
        if name not in kernels:
            continue
        compiled, log, signature = _compile(fn, args, consts, cfg, arch)
        stats = dict(parse_ptxas_log(log), **cubin_resources(compiled.asm["cubin"]))
        names = list(fn.arg_names)
        strides = {a: f"%{a}" for a in names if BATCH_HEAD_STRIDES.match(a)}
        results.append(
            CompiledKernel(
                name=name,
                arch=arch,
                dtype=str(dtype).replace("torch.", ""),
                head_dim=head_dim,
                causal=causal,
                config=dict(cfg),
                registers=stats["registers"],
                frame_bytes=stats["frame_bytes"],
                spill_stores=stats["spill_stores"],
                spill_loads=stats["spill_loads"],
                shared_bytes=int(compiled.metadata.shared),
                ttgir=compiled.asm["ttgir"],
                ptx=compiled.asm["ptx"],
                stride_args=strides,
            )
        )
    return results


def i32_stride_products(kernel: CompiledKernel) -> list[str]:
    """TTGIR lines that multiply a batch or head stride argument in 32 bits (a wrapped
    offset once the tensor has 2^31 elements or more). Empty when all are 64-bit."""
    bad = []
    values = set(kernel.stride_args.values())
    for line in kernel.ttgir.splitlines():
        m = re.search(r"arith\.muli\s+(%[\w#]+),\s*(%[\w#]+).*:\s*(tensor<[^>]*x)?i32\b", line)
        if m and {m.group(1).split("#")[0], m.group(2).split("#")[0]} & values:
            bad.append(line.strip())
    return bad


def markdown_table(rows: list[dict]) -> str:
    cols = [
        "kernel",
        "variant",
        "arch",
        "dtype",
        "d",
        "causal",
        "tile",
        "warps",
        "stages",
        "registers",
        "stack_bytes",
        "shared_kib",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


TRAINING = ("forward", "backward_dkdv", "backward_dq")


def matrix(arch: int, scope: str = "all"):
    """(head dim, dtype, causal, kernels, dropout_p, block-sparse) to build for ``arch``.
    ``all``: every kernel for every (d in {64, 128}, fp16/bf16, causal or not), plus the
    training kernels with dropout and with a block mask (bf16, causal): what the benchmark
    records. ``test``: what the test suite builds in its time budget: on sm_90a the forward
    for all eight configurations, the other kernels for bf16 causal, and dropout and
    block-sparse variants of the training kernels; on sm_80 the forward for bf16 (causal and not) and
    the other kernels for bf16 causal at d = 128."""
    for d in (64, 128):
        for dtype in (torch.bfloat16, torch.float16):
            for causal in (True, False):
                main_case = dtype == torch.bfloat16 and causal
                if scope == "all":
                    yield d, dtype, causal, KERNELS, 0.0, False
                    if main_case:
                        yield d, dtype, causal, TRAINING, 0.1, False
                        yield d, dtype, causal, TRAINING, 0.0, True
                elif arch >= 90:
                    yield d, dtype, causal, (KERNELS if main_case else ("forward",)), 0.0, False
                    if main_case:
                        yield d, dtype, causal, TRAINING, 0.1, False
                        yield d, dtype, causal, TRAINING, 0.0, True
                elif dtype == torch.bfloat16:
                    yield d, dtype, causal, (KERNELS if main_case and d == 128 else ("forward",)), 0.0, False


def main(argv: list[str] | None = None) -> int:
    """``python -m repro.attention.compile_check --arch 90 [--scope test]``: one JSON
    line per compiled kernel (its row, and the TTGIR lines with 32-bit stride products)."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("--scope", choices=("all", "test"), default="all", help="see matrix()")
    args = ap.parse_args(argv)
    for d, dtype, causal, kernels, dropout_p, sparse in matrix(args.arch, args.scope):
        for k in compile_configuration(
            args.arch, dtype, d, causal, dropout_p=dropout_p, sparse=sparse, kernels=kernels
        ):
            row = k.row()
            row["variant"] = "dropout" if dropout_p else "block-sparse" if sparse else ""
            row["i32_stride_products"] = i32_stride_products(k)
            row["spills"] = k.spills
            print("ROW " + json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
