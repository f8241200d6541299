"""``paperkb chat CHECKPOINT_DIR``: talk to a local Llama checkpoint in the Llama 2-Chat format.

A thin layer over ``repro.llama.chat``; torch is imported inside the command only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from cli.common import guard
from cli.output import clean


@guard
def chat(
    checkpoint: Path = typer.Argument(
        ...,
        help="Checkpoint folder: Hugging Face layout (config.json + "
        "safetensors), Meta layout (params.json + consolidated.*.pth), or one "
        "written by repro.finetune; its tokenizer.json or tokenizer.model is used "
        "(none: the byte tokenizer).",
    ),
    system: Optional[str] = typer.Option(None, "--system", "-s", help="System prompt (inside <<SYS>> tags)."),
    message: Optional[list[str]] = typer.Option(
        None,
        "--message",
        "-m",
        help="A user turn; repeat for several. Without it, user turns are "
        "read from stdin, one per line, until EOF or /exit.",
    ),
    temperature: float = typer.Option(0.6, "--temperature", "-t", min=0.0, help="0 = greedy."),
    top_p: float = typer.Option(0.9, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass."),
    max_gen_len: int = typer.Option(64, "--max-gen-len", min=1, help="Most tokens per answer."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1, help="Sampling seed."),
) -> None:
    """Multi-turn chat with a local checkpoint, in the Llama 2-Chat template.

    Text containing the template's own tags (\\[INST], \\[/INST], <<SYS>>, <</SYS>>) is refused, as in Meta's code.

    Example: paperkb chat runs/sft --system "Answer briefly." -m "What is RLHF?" -m "And PPO?"
    """
    from paperkb.errors import PaperkbError
    from repro.llama.chat import ChatSession, UnsafeTagError, load_checkpoint

    model, tokenizer = load_checkpoint(checkpoint)
    session = ChatSession(
        model, tokenizer, system=system, temperature=temperature, top_p=top_p, max_gen_len=max_gen_len, seed=seed
    )
    interactive = not message
    turns = iter(message) if message else _stdin_turns()
    for user in turns:
        try:
            answer = session.reply(user)
        except UnsafeTagError as exc:
            if not interactive:
                raise
            print(f"error: {exc}", file=sys.stderr)
            continue
        except PaperkbError:
            raise
        # model output is untrusted: no terminal escapes or control characters reach the screen
        print(clean(answer), flush=True)


def _stdin_turns():
    prompt = sys.stdin.isatty()
    while True:
        if prompt:
            print("user> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return
        line = line.rstrip("\n")
        if line.strip() in ("/exit", "/quit"):
            return
        if line.strip():
            yield line


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
