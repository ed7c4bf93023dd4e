"""Students: load, build from scratch, save and reload seq2seq models.

A student is named by
  * a local Hugging Face seq2seq directory or a hub id (`Salesforce/codet5-base`,
    `saikatc/NatGen`): loaded with AutoTokenizer / AutoModelForSeq2SeqLM, or
  * `scratch:tiny` / `scratch:small`: a T5 built from a config, with a byte-level
    BPE tokenizer trained on the training records (offline, seconds to minutes).

A trained student is a Hugging Face model directory plus `pdc_config.json`
(markers, lengths, training config, seed, data fingerprint, teacher, prompt
ids), so eval, export and bench format inputs exactly as training did.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterable

from pdc.errors import PdcError
from pdc.tasks import DEFAULT_MARKERS, Markers

PDC_CONFIG = "pdc_config.json"

# Sizes of the scratch students. `tiny` (0.2M parameters) trains in seconds
# (tests); `small` (~2M parameters) is the demo's student, sized so that three
# students train in minutes on a 2-core CPU.
SCRATCH_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(vocab_size=1024, d_model=64, d_ff=128, d_kv=16, num_heads=4,
                 num_layers=2, num_decoder_layers=2),
    "small": dict(vocab_size=4096, d_model=128, d_ff=512, d_kv=32, num_heads=4,
                  num_layers=3, num_decoder_layers=3),
}

SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>", "<s>"]


@dataclass
class Student:
    model: Any  # transformers PreTrainedModel (seq2seq)
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    spec: str
    config: dict[str, Any]  # pdc_config.json contents (empty for a fresh student)

    @property
    def markers(self) -> Markers:
        return Markers(**self.config.get("markers", DEFAULT_MARKERS.to_dict()))


def train_tokenizer(texts: Iterable[str], vocab_size: int, markers: Markers = DEFAULT_MARKERS):
    """A byte-level BPE tokenizer trained on `texts`, wrapped for transformers.

    Byte-level BPE keeps every space, tab and newline, so code round-trips
    exactly through encode/decode. `</s>` is appended to every sequence.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS + [markers.pseudocode, markers.code, markers.plan],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)]
    )
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok):
    """A `tokenizers.Tokenizer` (from `train_tokenizer`) as a transformers tokenizer."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        bos_token="<s>", model_max_length=1024, model_input_names=["input_ids", "attention_mask"],
    )


def build_scratch(size: str, texts: Iterable[str], seed: int, markers: Markers = DEFAULT_MARKERS,
                  tokenizer=None) -> Student:
    """A randomly initialised T5 of a named size, tokenizer trained on `texts` (unless given)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    if size not in SCRATCH_SIZES:
        raise PdcError(f"unknown scratch student 'scratch:{size}', choose scratch:{' or scratch:'.join(SCRATCH_SIZES)}")
    dims = dict(SCRATCH_SIZES[size])
    vocab_size = dims.pop("vocab_size")
    if tokenizer is None:
        tokenizer = train_tokenizer(texts, vocab_size, markers)
    config = T5Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        dropout_rate=0.1,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        **dims,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    return Student(model, tokenizer, f"scratch:{size}", {})


def load_pretrained(spec: str) -> Student:
    """A pre-trained seq2seq student by local directory or hub id."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
        model = AutoModelForSeq2SeqLM.from_pretrained(spec)
    except (OSError, ValueError) as e:
        where = "local directory" if os.path.isdir(spec) else "hub id (no network here? set HF_HUB_OFFLINE=1 and use a local copy)"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PdcError(f"cannot load student '{spec}' as a {where}: {first}") from None
    if not model.config.is_encoder_decoder:
        raise PdcError(f"student '{spec}' is not an encoder-decoder (seq2seq) model")
    config = read_pdc_config(spec) if os.path.isdir(spec) else {}
    return Student(model, tokenizer, spec, config)


def add_marker_tokens(student: Student, markers: Markers = DEFAULT_MARKERS) -> int:
    """Register the task markers as special tokens (one id each, never split) and
    grow the embeddings if the vocabulary outgrew them; return how many were new.

    The tokenizer saved with the student keeps them, so eval and export read the
    markers exactly as training wrote them.
    """
    tok, model = student.tokenizer, student.model
    wanted = list(markers.to_dict().values())
    before = len(tok)
    have = [str(t) for t in tok.special_tokens_map.get("additional_special_tokens", [])]
    missing = [m for m in wanted if m not in have]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": have + missing})
    if len(tok) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tok))
    return len(tok) - before


def set_dropout(model, p: float) -> None:
    """Set every dropout probability of a T5/BART-family model to `p` (config and modules)."""
    import torch

    for name in ("dropout_rate", "dropout", "attention_dropout", "activation_dropout", "classifier_dropout"):
        if isinstance(getattr(model.config, name, None), float):
            setattr(model.config, name, p)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, p)


def read_pdc_config(model_dir: str) -> dict[str, Any]:
    path = os.path.join(model_dir, PDC_CONFIG)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def load_trained(model_dir: str) -> Student:
    """A student that `pdc train` wrote (or any seq2seq directory), ready for inference."""
    if not os.path.isdir(model_dir):
        raise PdcError(f"model directory {model_dir} does not exist, train one with `pdc train --out {model_dir}`")
    student = load_pretrained(model_dir)
    student.model.eval()
    return student


def save_student(student: Student, out_dir: str, pdc_config: dict[str, Any]) -> None:
    """Write weights, tokenizer and pdc_config.json into `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    student.model.save_pretrained(out_dir)
    student.tokenizer.save_pretrained(out_dir)
    with open(os.path.join(out_dir, PDC_CONFIG), "w", encoding="utf-8") as fh:
        json.dump(pdc_config, fh, indent=2, sort_keys=True)
        fh.write("\n")
    student.config = pdc_config
