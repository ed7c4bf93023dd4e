"""pdc extract: the teacher step."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from pdc.options import Inputs, OnErrorOpt, input_paths
from pdc.stream import OnError


def extract(
    inputs: Inputs = None,
    teacher: Annotated[str, typer.Option("--teacher", "-t", help="ast (offline rules), gpt-4, deepseek, codellama-7b, codeqwen-7b, openai (any OpenAI-compatible endpoint) or hf:PATH_OR_ID (a local causal LM).")] = "ast",
    lang: Annotated[str, typer.Option("--lang", help="Language of a one-off problem.")] = "python",
    code: Annotated[Optional[str], typer.Option("--code", help="Reference code of a one-off problem (the ast teacher needs it).")] = None,
    code_file: Annotated[Optional[str], typer.Option("--code-file", help="Read the one-off problem's code from this file.")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="Endpoint root, e.g. http://127.0.0.1:8000/v1 (overrides the preset's).", rich_help_panel="HTTP teachers")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Model name sent to the endpoint (overrides the preset's).", rich_help_panel="HTTP teachers")] = None,
    api_key_env: Annotated[Optional[str], typer.Option("--api-key-env", help="Environment variable holding the API key (presets know theirs; local endpoints get no key unless named).", rich_help_panel="HTTP teachers")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-j", help="Requests in flight.", min=1, rich_help_panel="HTTP teachers")] = 8,
    rpm: Annotated[Optional[float], typer.Option("--rpm", help="At most this many requests per minute.", min=0.001, rich_help_panel="HTTP teachers")] = None,
    tpm: Annotated[Optional[float], typer.Option("--tpm", help="At most this many tokens per minute (estimated, corrected by reported usage).", min=1, rich_help_panel="HTTP teachers")] = None,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Retries per record on 429/5xx/timeouts/drops.", min=0, rich_help_panel="HTTP teachers")] = 8,
    request_timeout: Annotated[float, typer.Option("--request-timeout", help="Deadline in seconds for a whole request, first byte to last.", min=0.01, rich_help_panel="HTTP teachers")] = 300.0,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.", min=0, rich_help_panel="HTTP teachers")] = 0.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Completion tokens at most.", min=1, rich_help_panel="HTTP teachers")] = 1024,
    shots: Annotated[int, typer.Option("--shots", "-k", help="Few-shot exemplars in the prompt.", min=0, rich_help_panel="Prompt")] = 3,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Your own prompt file (format: src/pdc/prompts/README.md).", rich_help_panel="Prompt")] = None,
    cache: Annotated[Optional[str], typer.Option("--cache", help="Response cache (SQLite). Default: $PDC_CACHE_DIR or ~/.cache/pdc/teacher-cache.sqlite.", rich_help_panel="HTTP teachers")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the response cache.", rich_help_panel="HTTP teachers")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: only the records of shard I of N (by a hash of the id).")] = None,
    breaker_threshold: Annotated[int, typer.Option("--breaker-threshold", help="Failed attempts in a row that open the circuit breaker.", min=1, rich_help_panel="HTTP teachers")] = 8,
    breaker_cooldown: Annotated[float, typer.Option("--breaker-cooldown", help="Seconds the breaker stays open before a probe (doubles per trip).", min=0, rich_help_panel="HTTP teachers")] = 30.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="hf: teachers: prompts generated together.", min=1)] = 8,
    device: Annotated[Optional[str], typer.Option("--device", help="hf: teachers: cpu or cuda (default: cuda if available).")] = None,
    on_error: OnErrorOpt = OnError.stop,
) -> None:
    """Annotate problems with a teacher's numbered pseudocode and code.

    Records in (JSONL, files or stdin), the same records out, in input order,
    with teacher, model, prompt_id, pseudocode, teacher_code and status added
    (HTTP teachers add usage and teacher_config). A record the teacher cannot
    annotate becomes a failure record (status "error"); the run then exits 3.
    HTTP answers are cached, so re-running a killed command repeats no
    finished call. An argument that is not a file and contains a space is a
    one-off problem:

    \b
        pdc prepare --harvest --limit 100 | pdc extract --teacher ast > cot.jsonl

    \b
        pdc extract --teacher deepseek --concurrency 32 < problems.jsonl > cot-deepseek.jsonl

    \b
        pdc extract --teacher gpt-4 "Flatten a nested list."
    """
    from pdc import extract as core
    from pdc.cache import default_path
    from pdc.errors import PdcError
    from pdc.jsonl import Writer, read_lines
    from pdc.log import info
    from pdc.stream import apply, finish
    from pdc.teachers import get_teacher

    the_teacher = get_teacher(
        teacher, base_url=base_url, model=model, api_key_env=api_key_env, concurrency=concurrency, rpm=rpm,
        tpm=tpm, max_retries=max_retries, request_timeout=request_timeout, temperature=temperature,
        max_tokens=max_tokens, shots=shots, prompt=prompt, cache=None if no_cache else (cache or default_path()),
        breaker_threshold=breaker_threshold, breaker_cooldown=breaker_cooldown, batch_size=batch_size,
        device=device, seed=0)
    network = hasattr(the_teacher, "annotate_async")
    selected = core.parse_shard(shard)
    problems = [a for a in (inputs or []) if a != "-" and not os.path.exists(a) and " " in a]
    if code_file is not None:
        try:
            with open(code_file, encoding="utf-8") as fh:
                code = fh.read()
        except OSError as e:
            raise PdcError(f"cannot read --code-file {code_file}: {e.strerror}") from None
    if problems:
        if len(problems) != len(inputs or []):
            raise PdcError("give either input files or one problem text, not both", exit_code=2)
        if len(problems) > 1:
            raise PdcError("give one problem at a time (quote it)", exit_code=2)
        out = _one_off(the_teacher, core.one_off_problem(problems[0], lang, code), network)
        _show(out)
        if out["status"] != "ok":
            raise PdcError(f"the {teacher} teacher failed: {out['error']['message']}", exit_code=3)
        return
    lines = core.select_shard(read_lines(input_paths(inputs), tolerant=True), selected)
    if network:
        tally, failed = core.run_network_teacher(the_teacher, lines, Writer(), on_error, info)
    elif hasattr(the_teacher, "annotate_batch"):
        tally, failed = core.run_batch_teacher(the_teacher, lines, Writer(), on_error, the_teacher.batch_size)
    else:
        failed = 0

        def step(record: dict, where: str):
            nonlocal failed
            for out in core.extract(the_teacher, record, where):
                failed += out["status"] != "ok"
                yield out

        tally = apply(lines, step, Writer(), on_error)
    finish(tally)
    if failed:
        raise PdcError(f"{failed} of {tally.read} record(s) could not be annotated "
                       "(status 'error' in the output; retryable ones are asked again on a re-run)", exit_code=3)


def _one_off(teacher, record: dict, network: bool) -> dict:
    from pdc import extract as core

    if not network:
        return core.extract_record(teacher, record, "command line")
    import asyncio

    async def main() -> dict:
        await teacher.start()
        try:
            return await core.extract_record_async(teacher, record, "command line")
        finally:
            await teacher.stop()

    return asyncio.run(main())


def _show(record: dict) -> None:
    """One-off result: readable on a terminal, one JSONL line otherwise."""
    from pdc.jsonl import Writer

    if not sys.stdout.isatty():
        Writer().write(record)
        return
    from rich.console import Console
    from rich.syntax import Syntax

    out = Console()
    out.print(f"[bold]Problem[/]: {record['nl']}")
    out.print(f"[dim]{record['teacher']} / {record['model']} / {record['prompt_id']}[/]")
    if record["status"] != "ok":
        out.print(f"[red]failed[/]: {record['error']['message']}")
        return
    out.print("[bold]Pseudocode[/]:")
    for i, step in enumerate(record["pseudocode"], 1):
        out.print(f"  {i}. {step}", markup=False)
    out.print("[bold]Code[/]:")
    out.print(Syntax(record["teacher_code"], record["lang"]))
