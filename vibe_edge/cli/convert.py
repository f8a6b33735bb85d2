"""`vibe-edge convert SRC` and `vibe-edge pull REPO`: thin wrappers over convert.pipeline."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from vibe_edge.cli.common import cli_errors, console, err_console, notify
from vibe_edge.settings import load_settings


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_cmd)
    app.command("pull")(pull_cmd)


class _Bars:
    """One progress bar per stage (convert bytes, quantize tensors, evaluate windows)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description:<18}"), BarColumn(), TaskProgressColumn(),
                                 TimeRemainingColumn(), console=err_console, transient=False)
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _sigterm_as_interrupt() -> None:
    # A `kill` should clean up like Ctrl-C does: temp files are removed on KeyboardInterrupt.
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. under a test runner's worker)
        pass


def _models_dir(out: Optional[Path]) -> Path:
    return out if out is not None else load_settings().resolved_models_dir


def convert_cmd(
    src: Annotated[str, typer.Argument(help="A local Hugging Face model folder, or a hub id (org/name).")],
    quant: Annotated[Optional[list[str]], typer.Option(
        "--quant", "-q", help="Quantize to this type (repeatable): Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, "
                              "IQ4_XS, Q3_K_M.")] = None,
    outtype: Annotated[str, typer.Option(
        help="Unquantized file type: auto (follow the checkpoint), bf16, f16 or f32.")] = "auto",
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Output folder. Default: the models directory from settings.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Model name. Default: the folder or repo name.")] = None,
    revision: Annotated[Optional[str], typer.Option(help="Hub branch, tag or commit.")] = None,
    verify: Annotated[Optional[bool], typer.Option(
        "--verify/--no-verify",
        help="Prove the result faithful (tokenizer parity, logits, quant table). Default: on when "
             "transformers and torch are installed.")] = None,
    keep_unquantized: Annotated[Optional[bool], typer.Option(
        "--keep-unquantized/--no-keep-unquantized",
        help="Keep the bf16/f16/f32 file next to the quantized ones. Default: only without --quant.")] = None,
    kl_budget: Annotated[Optional[float], typer.Option(
        help="KL budget (nats/token) for the recommended quantization.")] = None,
    force: Annotated[bool, typer.Option(help="Replace existing files of the same name.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Convert a Qwen2 / Llama checkpoint into GGUF files in the models directory, verified."""
    from vibe_edge.convert.pipeline import ConvertRequest, run_convert

    _sigterm_as_interrupt()
    with cli_errors():
        out_dir = _models_dir(out)
        with _Bars() as bars:
            report = run_convert(ConvertRequest(
                src=src, out_dir=out_dir, quants=list(quant or []), outtype=outtype, name=name,
                revision=revision, verify=verify, keep_unquantized=keep_unquantized, force=force,
                kl_budget=kl_budget, progress=bars, log=notify))
    if as_json:
        import json

        console.print_json(json.dumps({
            "models": [m.to_dict() for m in report.manifests],
            "verification": report.verification,
        }))
        return
    ver = report.verification
    if "tokenizer_parity" in ver:
        p = ver["tokenizer_parity"]
        console.print(f"tokenizer parity: {p['n_strings'] - p['n_mismatches']}/{p['n_strings']} strings identical")
    if "logits" in ver:
        lg = ver["logits"]
        console.print(f"logits vs transformers: KL mean {lg['kl_mean']:.2e}, top-1 {lg['top1']:.3f}, "
                      f"max diff {lg['max_abs_diff']:.3g} ({lg['n_tokens']} tokens)")
    if report.quant_table is not None:
        console.print(report.quant_table.format())
    for m in report.manifests:
        console.print(f"[green]ready:[/] {m.name}  ({m.quant}, {m.size_bytes / 2**20:.1f} MB)  "
                      f"--model {m.name}")


def pull_cmd(
    repo: Annotated[str, typer.Argument(help="Hub repository of GGUF files, e.g. mradermacher/VibeThinker-1.5B-GGUF.")],
    quant: Annotated[str, typer.Option("--quant", "-q", help="Which file: Q4_K_M, Q8_0, ...")] = "Q4_K_M",
    revision: Annotated[Optional[str], typer.Option(help="Hub branch, tag or commit.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Models directory.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Model name. Default: the file's name.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing model of the same name.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Fetch a published GGUF from the hub (or the local cache when offline), check it, register it."""
    from vibe_edge.convert.pipeline import PullRequest, pull_model

    _sigterm_as_interrupt()
    with cli_errors():
        manifest = pull_model(PullRequest(repo=repo, out_dir=_models_dir(out), quant=quant,
                                          revision=revision, name=name, force=force))
    if as_json:
        import json

        console.print_json(json.dumps(manifest.to_dict()))
        return
    console.print(f"[green]ready:[/] {manifest.name}  ({manifest.quant}, "
                  f"{(manifest.size_bytes or 0) / 2**20:.1f} MB)  --model {manifest.name}")
