"""Tiny pre-trained-style students of the families pdc supports, built offline.

Each is saved in the layout its hub checkpoint has, so `load_pretrained` reads
it exactly as it reads `Salesforce/codet5-base` or `saikatc/NatGen`:

    t5_sentencepiece  T5 + SentencePiece unigram tokenizer (t5-small, codet5p style): spiece.model
    t5_roberta_bpe    T5 + RoBERTa byte-level BPE (CodeT5, NatGen): vocab.json + merges.txt,
                      tokenizer_config.json naming RobertaTokenizer, no tokenizer.json
    bart              BART + its byte-level BPE (vocab.json + merges.txt)
"""

from __future__ import annotations

import inspect
import os

DIMS = dict(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2)


def corpus() -> list[str]:
    from pdc import jsonl, students, tasks

    return [line for m in (jsonl, students, tasks, os) for line in inspect.getsource(m).splitlines() if line.strip()]


def t5_sentencepiece(out: str) -> str:
    import sentencepiece as spm
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5TokenizerFast

    os.makedirs(out, exist_ok=True)
    prefix = os.path.join(out, "spiece")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_prefix=prefix, vocab_size=400, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, minloglevel=2,
    )
    os.remove(prefix + ".vocab")
    tok = T5TokenizerFast(vocab_file=prefix + ".model", extra_ids=8)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=len(tok), pad_token_id=0, eos_token_id=1,
                                                decoder_start_token_id=0, **DIMS))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _byte_level_bpe(out: str, vocab_size: int = 500) -> tuple[str, str]:
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus(), vocab_size=vocab_size, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    os.makedirs(out, exist_ok=True)
    vocab, merges = bpe.save_model(out)
    return vocab, merges


def t5_roberta_bpe(out: str) -> str:
    """CodeT5 / NatGen: a T5 whose tokenizer is RoBERTa's (RobertaTokenizer files only)."""
    import torch
    from transformers import RobertaTokenizer, T5Config, T5ForConditionalGeneration

    vocab, merges = _byte_level_bpe(out)
    tok = RobertaTokenizer(vocab, merges)
    tok.save_pretrained(out)
    for extra in ("tokenizer.json",):  # the hub repos ship the slow files only
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                                eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                                                decoder_start_token_id=tok.pad_token_id, **DIMS))
    model.save_pretrained(out)
    return out


def bart(out: str) -> str:
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizer

    vocab, merges = _byte_level_bpe(out)
    tok = BartTokenizer(vocab, merges)
    tok.save_pretrained(out)
    torch.manual_seed(0)
    model = BartForConditionalGeneration(BartConfig(
        vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=256,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id, forced_eos_token_id=tok.eos_token_id))
    model.save_pretrained(out)
    return out


def as_hub_cache(src: str, cache: str, repo_id: str, commit: str = "0" * 40) -> None:
    """Lay `src` out as huggingface_hub's cache holds a downloaded `repo_id`
    (HF_HUB_CACHE=cache, HF_HUB_OFFLINE=1 then resolves the hub id from it)."""
    import shutil

    root = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    os.makedirs(os.path.join(root, "refs"), exist_ok=True)
    with open(os.path.join(root, "refs", "main"), "w") as fh:
        fh.write(commit)
    shutil.copytree(src, os.path.join(root, "snapshots", commit), dirs_exist_ok=True)
