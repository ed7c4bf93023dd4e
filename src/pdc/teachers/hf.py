"""A local Hugging Face causal LM as teacher, generating for a batch of records at once.

    from pdc.teachers.hf import HfTeacher
    teacher = HfTeacher("Qwen/Qwen2.5-Coder-7B-Instruct", batch_size=16, max_tokens=512)
    results = teacher.annotate_batch([(record, "stdin:1"), (other, "stdin:2")])
    # one per input, in order: {"pseudocode", "teacher_code", "usage"} or a TeacherFailure

`pdc extract --teacher hf:PATH_OR_ID` builds one. The model is a local
directory or a hub id already in the local Hugging Face cache: nothing is
downloaded, and no code from the model repository is run (no
trust_remote_code).

Prompt: a tokenizer with a chat template gets the paper's chat messages
(`pdc.prompt`), rendered with the generation prompt; a template that refuses
a system turn gets the system message folded into the first user turn. A
tokenizer without one gets the plain-text prompt, which ends in "Pseudocode:
\\n1." so a base model continues with the first step; generation stops at
EOS or at the start of a next "Problem:". `config()["prompt_format"]` says
which ("chat", "chat-system-in-user" or "text").

Generation: prompts are tokenized one by one, sorted by length and run in
chunks of `batch_size`, left-padded (a tokenizer without a pad token pads
with EOS) so every row's new tokens start at the same column. Greedy when
`temperature` is 0, else sampling at that temperature (no top-k/top-p) with
torch seeded from `seed` before each chunk. Only the model's own settings
named here apply: its generation_config.json defaults (top_p, repetition
penalty...) do not. A chunk that runs out of GPU memory is split in half and
retried; a single record that still does not fit fails (retryable).

Per record, from the new tokens only: the text up to the first EOS (any of
the tokenizer's and the model's EOS ids) or text stop string, finish_reason
"stop" if one was met, else "length" (max_tokens new tokens without an end,
which pdc.teachers.parse turns into a "truncated" failure). usage counts the
prompt's tokens (no padding) and the new tokens up to and including the EOS.

A prompt that leaves fewer than `max_tokens` positions in the model's
context is not truncated: the record fails with kind "context_length".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pdc.errors import PdcError
from pdc.teachers import TeacherFailure


@dataclass
class Completion:
    """What the model wrote for one prompt."""

    text: str                # decoded new tokens, up to (not including) the EOS or stop string
    finish_reason: str       # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int   # new tokens up to and including the EOS (all of them for "length")

    def usage(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens, "cached": False}


_DTYPES = ("auto", "float32", "bfloat16", "float16")


class HfTeacher:
    """A causal LM from a local directory or the local Hugging Face cache, batched on one device."""

    # the keyword arguments get_teacher passes on from the extract command's options
    OPTIONS = frozenset({"shots", "prompt", "batch_size", "max_tokens", "temperature", "device", "dtype", "seed"})

    def __init__(self, path_or_id: str, *, shots: int = 3, prompt: str | None = None, batch_size: int = 8,
                 max_tokens: int = 1024, temperature: float = 0.0, device: str | None = None,
                 dtype: str | None = None, seed: int = 0):
        import torch

        from pdc.prompt import load_prompt

        if batch_size < 1 or max_tokens < 1 or temperature < 0:
            raise PdcError(f"hf teacher needs batch_size >= 1, max_tokens >= 1 and temperature >= 0, got "
                           f"{batch_size}, {max_tokens} and {temperature}", exit_code=2)
        if dtype is not None and dtype not in _DTYPES:
            raise PdcError(f"unknown dtype '{dtype}', choose one of: {', '.join(_DTYPES)}", exit_code=2)
        self.path = path_or_id
        self.name = "hf:" + path_or_id
        self.model = path_or_id
        self.shots, self.batch_size, self.max_tokens = shots, batch_size, max_tokens
        self.temperature, self.seed = float(temperature), seed
        self.prompt = load_prompt(prompt)
        self.prompt_id = self.prompt.prompt_id("python", shots)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer, self.lm = _load(path_or_id, self.device, dtype)
        self.eos_ids = _eos_ids(self.tokenizer, self.lm)
        if not self.eos_ids:
            raise PdcError(f"model '{path_or_id}' has no EOS token (tokenizer or generation_config.json), "
                           "so generation could not stop; use a model that defines one")
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids)
        self.context = _context_size(self.lm, self.tokenizer)
        self.prompt_format = self._choose_format()
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.cached = 0  # nothing is cached; kept so progress lines read the same as for HTTP teachers
        self.client = None

    # --- provenance --------------------------------------------------------------------------

    def prompt_id_for(self, lang: str) -> str:
        return self.prompt.prompt_id(lang, self.shots)

    def config(self) -> dict[str, Any]:
        """What made the records, for their provenance."""
        out = {"model": self.path, "prompt_format": self.prompt_format, "shots": self.shots,
               "max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed,
               "dtype": str(self.lm.dtype).removeprefix("torch."), "device": self.device,
               "batch_size": self.batch_size}
        commit = getattr(self.lm.config, "_commit_hash", None)
        if commit:
            out["commit"] = commit
        return out

    # --- prompts -----------------------------------------------------------------------------

    def _choose_format(self) -> str:
        """"text" without a chat template; "chat", or "chat-system-in-user" if the template refuses system turns."""
        if not getattr(self.tokenizer, "chat_template", None):
            return "text"
        probe = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                 {"role": "assistant", "content": "A"}, {"role": "user", "content": "U"}]
        problems = []
        for fmt in ("chat", "chat-system-in-user"):
            try:
                self._chat(probe, fmt)
                return fmt
            except Exception as e:  # noqa: BLE001 - jinja raises TemplateError or whatever the template raises
                problems.append(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        raise PdcError(f"the chat template of '{self.path}' rejects a system/user/assistant conversation "
                       f"({problems[-1]}); use a model whose template accepts one")

    def _chat(self, messages: list[dict[str, str]], fmt: str) -> str:
        if fmt == "chat-system-in-user" and messages and messages[0]["role"] == "system":
            system, first, *rest = messages
            messages = [{"role": "user", "content": f"{system['content']}\n\n{first['content']}"}, *rest]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def render(self, record: dict[str, Any]) -> str:
        """The prompt text the model sees for `record` (TeacherFailure for a record the prompt cannot take)."""
        if self.prompt_format == "text":
            return self.prompt.text(record, self.shots)
        return self._chat(self.prompt.messages(record, self.shots), self.prompt_format)

    def encode(self, text: str) -> list[int]:
        """Token ids of a rendered prompt: a chat rendering carries its own special tokens."""
        if self.prompt_format != "text":
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = self.tokenizer(text)["input_ids"]  # BOS where the tokenizer adds one
        while ids and ids[-1] in self.eos_ids:  # tokenizers that append EOS would end the prompt
            ids = ids[:-1]
        return ids

    # --- generation --------------------------------------------------------------------------

    def generate(self, prompts: list[list[int]]) -> list[Completion]:
        """One Completion per prompt (token ids), in order; chunks of batch_size, shortest prompts together."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Completion | None] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            for i, completion in zip(chunk, self._generate_fitting([prompts[i] for i in chunk])):
                out[i] = completion
        return out  # type: ignore[return-value]

    def _generate_fitting(self, prompts: list[list[int]]) -> list[Completion]:
        """_generate_chunk, halving the chunk while the GPU runs out of memory."""
        import torch

        try:
            return self._generate_chunk(prompts)
        except torch.OutOfMemoryError:
            if len(prompts) == 1:
                raise
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            half = len(prompts) // 2
            return self._generate_fitting(prompts[:half]) + self._generate_fitting(prompts[half:])

    def _generate_chunk(self, prompts: list[list[int]]) -> list[Completion]:
        import torch
        from transformers import GenerationConfig

        from pdc.prompt import TEXT_STOP

        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)  # (B, T), left-padded
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids):] = 1
        sample = self.temperature > 0
        stops = list(TEXT_STOP) if self.prompt_format == "text" else None
        settings = GenerationConfig(
            max_new_tokens=self.max_tokens, do_sample=sample, num_beams=1,
            temperature=self.temperature if sample else 1.0, top_k=None, top_p=None,
            eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_id, stop_strings=stops)
        if sample:
            torch.manual_seed(self.seed)
        with torch.inference_mode():
            generated = self.lm.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device),
                generation_config=settings, use_model_defaults=False,
                tokenizer=self.tokenizer if stops else None)  # (B, T + new), new <= max_tokens
        new = generated[:, width:].tolist()
        return [self._read(ids, len(p), stops or ()) for ids, p in zip(new, prompts)]

    def _read(self, new: list[int], prompt_tokens: int, stops) -> Completion:
        """The completion in one row of new tokens (a finished row is padded up to the longest)."""
        end = next((k for k, t in enumerate(new) if t in self.eos_ids), None)
        if end is not None:
            text = self.tokenizer.decode(new[:end], skip_special_tokens=True)
            count, reason = end + 1, "stop"
        else:
            kept = list(new)
            while kept and kept[-1] == self.pad_id:  # a row that a stop string ended before the others
                kept.pop()
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            count, reason = len(kept), "length" if len(kept) >= self.max_tokens else "stop"
        cut = min((at for at in (text.find(s) for s in stops) if at >= 0), default=None)
        if cut is not None:
            text, reason = text[:cut], "stop"
        return Completion(text, reason, prompt_tokens, count)

    # --- annotation --------------------------------------------------------------------------

    def annotate_batch(self, items: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any] | TeacherFailure]:
        """One result per (record, where), in order: an annotation dict or a TeacherFailure.

        A failure before generation (unsupported language, no problem text, a
        prompt too long for the context) carries no usage; a failure to parse
        what the model wrote carries the tokens it spent.
        """
        from pdc.prompt import TEXT_TAIL
        from pdc.teachers.parse import parse_response

        results: list[dict[str, Any] | TeacherFailure | None] = [None] * len(items)
        ready: list[tuple[int, list[int]]] = []
        for i, (record, _where) in enumerate(items):
            try:
                ids = self.encode(self.render(record))
            except TeacherFailure as e:
                results[i] = e
                continue
            if len(ids) + self.max_tokens > self.context:
                results[i] = TeacherFailure(
                    "context_length", f"the prompt has {len(ids)} tokens and max_tokens is {self.max_tokens}, "
                    f"more than the model's {self.context} positions; lower --shots or --max-tokens")
                continue
            ready.append((i, ids))
        completions = self.generate([ids for _, ids in ready]) if ready else []
        for (i, _), completion in zip(ready, completions):
            usage = completion.usage()
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                self.usage[k] += usage[k]
            text = TEXT_TAIL + completion.text if self.prompt_format == "text" else completion.text
            try:
                parsed = parse_response(text, items[i][0]["lang"], completion.finish_reason)
            except TeacherFailure as e:
                e.usage = usage
                results[i] = e
                continue
            results[i] = {**parsed, "usage": usage}
        return results  # type: ignore[return-value]

    def annotate(self, problem: dict[str, Any], where: str) -> dict[str, Any]:
        """annotate_batch for one record; raises its TeacherFailure."""
        (result,) = self.annotate_batch([(problem, where)])
        if isinstance(result, TeacherFailure):
            raise result
        return result


# --- loading -----------------------------------------------------------------------------------


def _load(path_or_id: str, device: str, dtype: str | None):
    """(tokenizer, model in eval mode on `device`); PdcError naming the model when it cannot be loaded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = os.path.isdir(path_or_id)
    a_path = os.path.exists(path_or_id) or path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") > 1
    if not local and a_path:  # hub ids are NAME or OWNER/NAME
        raise PdcError(f"no model directory at {path_or_id}, check the path (hf:PATH_OR_ID takes a local "
                       "directory or a hub id in the local Hugging Face cache)")
    if dtype is None:
        dtype = "auto" if device.startswith("cuda") else "float32"
    try:
        tokenizer = AutoTokenizer.from_pretrained(path_or_id, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            path_or_id, local_files_only=True, dtype=dtype if dtype == "auto" else getattr(torch, dtype))
    except Exception as e:  # noqa: BLE001 - missing files, unknown architecture, corrupt weights: all "cannot load"
        where = "the directory" if local else ("the hub id (looked up in the local Hugging Face cache only: "
                                                f"download it first, e.g. `hf download {path_or_id}`)")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PdcError(f"cannot load the causal LM '{path_or_id}' from {where}: {first}") from None
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as e:
        raise PdcError(f"cannot put '{path_or_id}' on device '{device}': {str(e).splitlines()[0]}; "
                       "choose another device") from None
    model.eval()
    return tokenizer, model


def _eos_ids(tokenizer, model) -> set[int]:
    """Every id that ends an answer: the tokenizer's EOS and the model's (chat models list end-of-turn too)."""
    ids = {tokenizer.eos_token_id}
    configured = model.generation_config.eos_token_id
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return {i for i in ids if i is not None}


def _context_size(model, tokenizer) -> int:
    """Positions the model can attend over: its config, else the tokenizer's model_max_length."""
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(model.config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 10**7 else 10**9
