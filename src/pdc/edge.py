"""The torch-free runtime: an exported student run with onnxruntime, tokenizers and numpy only.

    from pdc.edge import EdgeModel
    model = EdgeModel("runs/demo/export/int8")
    ids = model.encode("[code] Reverse the string s.")
    print(model.decode(model.generate(ids, max_new_tokens=64)))

This is what `pip install 'pdc[edge]'` runs on a Raspberry Pi: `pdc generate` and
`pdc bench` use it for every directory holding *.onnx files. It imports neither
torch nor transformers nor optimum (tests/test_edge.py proves it in a subprocess
that refuses to import them).

It reads what `pdc export` writes into a variant directory: encoder_model.onnx,
decoder_model_merged.onnx (optimum's merged decoder: `use_cache_branch` false runs
the first step without a cache, true runs a cached step), config.json,
generation_config.json, tokenizer.json, tokenizer_config.json and pdc_config.json.

Decoding follows transformers' `generate` (4.57) so the tokens are the same as
PyTorch's and optimum's: greedy search stops at </s> or after max_new_tokens;
beam search is transformers' vectorised beam search (2*k candidates per step,
length-normalised finished hypotheses, `early_stopping`, `length_penalty`).
The key/value cache: cross-attention keys and values are computed once, on the
first step, and reused; self-attention keys and values grow by one position a step.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pdc.errors import PdcError
from pdc.tasks import DEFAULT_MARKERS, Markers

ENCODER = "encoder_model.onnx"
DECODER = "decoder_model_merged.onnx"
NEG = -1.0e9  # transformers' "impossible" score


def session_options(threads: int | None = None, spin: bool = True):
    """onnxruntime SessionOptions: `threads` intra-op threads (None: onnxruntime's default), quiet logs.

    spin=False stops idle worker threads busy-waiting between runs, which would
    steal the cores from PyTorch when both run in turn (the parity check).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def _read_json(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def clean_up_tokenization(text: str) -> str:
    """transformers' clean_up_tokenization: no space before punctuation and English contractions."""
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float32: (N, V) -> (N, V)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def topk(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first (ties: lower index first): (N,) -> (k,)."""
    if k >= values.shape[0]:
        return np.argsort(-values, kind="stable")
    part = np.argpartition(-values, k - 1)[:k]
    return part[np.lexsort((part, -values[part]))]


@dataclass
class Beam:
    """One result of beam search: the generated ids and their length-normalised score."""

    ids: list[int]
    score: float


class EdgeModel:
    """An exported seq2seq student: encoder + merged decoder sessions, tokenizer and configs."""

    def __init__(self, model_dir: str, threads: int | None = None, spin: bool = True):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_dir = model_dir
        missing = [f for f in (ENCODER, DECODER, "config.json", "tokenizer.json")
                   if not os.path.exists(os.path.join(model_dir, f))]
        if missing:
            raise PdcError(f"{model_dir} is not a pdc ONNX export (missing {', '.join(missing)}), "
                           "export one with `pdc export --model DIR --out OUT` and use OUT/fp32 or OUT/int8")
        self.model_config = _read_json(os.path.join(model_dir, "config.json"))
        self.generation_config = _read_json(os.path.join(model_dir, "generation_config.json"))
        self.tokenizer_config = _read_json(os.path.join(model_dir, "tokenizer_config.json"))
        self.config = _read_json(os.path.join(model_dir, "pdc_config.json"))  # pdc_config.json, as Student.config
        so = session_options(threads, spin)
        try:
            self.encoder = ort.InferenceSession(os.path.join(model_dir, ENCODER), so,
                                                providers=["CPUExecutionProvider"])
            self.decoder = ort.InferenceSession(os.path.join(model_dir, DECODER), so,
                                                providers=["CPUExecutionProvider"])
            self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        except Exception as e:  # onnxruntime and tokenizers raise their own types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PdcError(f"cannot load ONNX model from {model_dir}: {first}") from None
        self.tokenizer.no_padding()
        max_len = int(self.config.get("max_source_length") or 512)
        self.tokenizer.enable_truncation(max_len)
        self.clean_up = bool(self.tokenizer_config.get("clean_up_tokenization_spaces", False))

        get = lambda key, default=None: self.generation_config.get(key, self.model_config.get(key, default))  # noqa: E731
        self.pad_id = int(get("pad_token_id", 0))
        self.eos_id = int(get("eos_token_id", 1)) if not isinstance(get("eos_token_id", 1), list) \
            else int(get("eos_token_id")[0])
        self.start_id = int(get("decoder_start_token_id", self.pad_id))
        names = [i.name for i in self.decoder.get_inputs()]
        if "use_cache_branch" not in names:
            raise PdcError(f"{model_dir}/{DECODER} is not a merged decoder (no use_cache_branch input), "
                           "re-export with `pdc export`")
        self.past_names = [n for n in names if n.startswith("past_key_values.")]
        self.self_names = [n for n in self.past_names if ".decoder." in n]
        self.cross_names = [n for n in self.past_names if ".encoder." in n]
        shape = next(i.shape for i in self.decoder.get_inputs() if i.name == self.past_names[0])
        self.heads, self.head_dim = int(shape[1]), int(shape[3])
        self.dtype = np.float16 if "float16" in next(
            i.type for i in self.decoder.get_inputs() if i.name == self.past_names[0]) else np.float32
        self.present_self = [n.replace("past_key_values.", "present.") for n in self.self_names]
        self.present_cross = [n.replace("past_key_values.", "present.") for n in self.cross_names]

    # --- text ---------------------------------------------------------------------------

    @property
    def markers(self) -> Markers:
        return Markers(**self.config.get("markers", DEFAULT_MARKERS.to_dict()))

    def encode(self, text: str) -> list[int]:
        """Token ids of one input, as training tokenized it (special tokens added, truncated)."""
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, special tokens dropped (transformers' decode(skip_special_tokens=True))."""
        text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        return clean_up_tokenization(text) if self.clean_up else text

    def max_new_tokens(self, max_new_tokens: int | None = None) -> int:
        """The generation budget: explicit, else the student's max_target_length, else 64."""
        return int(max_new_tokens or self.config.get("max_target_length") or 64)

    # --- the two graphs -------------------------------------------------------------------

    def _encode_batch(self, batch: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded ids through the encoder: hidden (B, S, D) and mask (B, S)."""
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)  # (B, S)
        mask = np.zeros((len(batch), width), dtype=np.int64)  # (B, S)
        for row, ids in enumerate(batch):
            input_ids[row, :len(ids)] = ids
            mask[row, :len(ids)] = 1
        (hidden,) = self.encoder.run(["last_hidden_state"], {"input_ids": input_ids, "attention_mask": mask})
        return hidden, mask

    def _first_step(self, tokens: np.ndarray, hidden: np.ndarray, mask: np.ndarray):
        """Decoder step without a cache: logits (N, V), self kv list, cross kv list."""
        n = tokens.shape[0]
        empty = np.zeros((n, self.heads, 0, self.head_dim), dtype=self.dtype)  # what optimum feeds
        feed = {"input_ids": tokens[:, None], "encoder_hidden_states": hidden, "encoder_attention_mask": mask,
                "use_cache_branch": np.array([False])}
        feed.update({name: empty for name in self.past_names})
        out = self.decoder.run(["logits"] + self.present_self + self.present_cross, feed)
        k = len(self.present_self)
        return out[0][:, -1, :].astype(np.float32), out[1:1 + k], out[1 + k:]

    def _cached_step(self, tokens: np.ndarray, hidden: np.ndarray, mask: np.ndarray,
                     self_kv: list[np.ndarray], cross_kv: list[np.ndarray]):
        """Decoder step with the cache: logits (N, V) and the self kv grown by one position."""
        feed = {"input_ids": tokens[:, None], "encoder_hidden_states": hidden, "encoder_attention_mask": mask,
                "use_cache_branch": np.array([True])}
        feed.update(zip(self.self_names, self_kv))
        feed.update(zip(self.cross_names, cross_kv))
        out = self.decoder.run(["logits"] + self.present_self, feed)
        return out[0][:, -1, :].astype(np.float32), out[1:]

    def _step(self, tokens: np.ndarray, hidden: np.ndarray, mask: np.ndarray, self_kv, cross_kv):
        """One decoding step, the first one (no cache yet) or a cached one: logits (N, V), self kv, cross kv."""
        if self_kv is None:
            return self._first_step(tokens, hidden, mask)
        logits, self_kv = self._cached_step(tokens, hidden, mask, self_kv, cross_kv)
        return logits, self_kv, cross_kv

    def close(self) -> None:
        """Nothing process-wide to undo (onnxruntime's threads belong to the sessions)."""

    # --- search ---------------------------------------------------------------------------

    def generate(self, ids: Sequence[int], max_new_tokens: int | None = None, num_beams: int = 1,
                 early_stopping: bool | None = None, length_penalty: float = 1.0) -> list[int]:
        """Generated ids for one input (decoder start dropped, </s> kept): greedy or the best beam."""
        if num_beams == 1:
            return self.greedy([ids], max_new_tokens)[0]
        return self.beam_search(ids, num_beams, max_new_tokens, early_stopping=early_stopping,
                                length_penalty=length_penalty)[0].ids

    def greedy(self, batch: Sequence[Sequence[int]], max_new_tokens: int | None = None) -> list[list[int]]:
        """Greedy search for a batch of inputs; each row stops at </s> (later steps write pad, dropped)."""
        budget = self.max_new_tokens(max_new_tokens)
        hidden, mask = self._encode_batch(batch)
        n = len(batch)
        tokens = np.full((n,), self.start_id, dtype=np.int64)  # (B,)
        done = np.zeros((n,), dtype=bool)
        out: list[list[int]] = [[] for _ in range(n)]
        self_kv = cross_kv = None
        for _ in range(budget):
            logits, self_kv, cross_kv = self._step(tokens, hidden, mask, self_kv, cross_kv)  # (B, V)
            tokens = np.where(done, self.pad_id, logits.argmax(axis=-1)).astype(np.int64)  # (B,)
            for row in np.flatnonzero(~done):
                out[row].append(int(tokens[row]))
            done |= tokens == self.eos_id
            if done.all():
                break
        return out

    def beam_search(self, ids: Sequence[int], num_beams: int, max_new_tokens: int | None = None,
                    early_stopping: bool | None = None, length_penalty: float = 1.0) -> list[Beam]:
        """transformers' beam search for one input; the num_beams finished hypotheses, best first."""
        budget = self.max_new_tokens(max_new_tokens)
        if early_stopping is None:
            early_stopping = bool(self.generation_config.get("early_stopping", False))
        k = num_beams
        keep = 2 * k  # candidates per step: max(2, 1 + number of eos ids) * k
        hidden, mask = self._encode_batch([ids])
        hidden, mask = np.repeat(hidden, k, axis=0), np.repeat(mask, k, axis=0)  # (k, S, D), (k, S)
        running = [[] for _ in range(k)]
        running_scores = np.full((k,), NEG, dtype=np.float32)
        running_scores[0] = 0.0
        finished: list[list[int]] = [[] for _ in range(k)]
        finished_scores = np.full((k,), NEG, dtype=np.float32)
        is_finished = np.zeros((k,), dtype=bool)
        unsatisfied = True  # transformers' is_early_stop_heuristic_unsatisfied
        tokens = np.full((k,), self.start_id, dtype=np.int64)
        self_kv = cross_kv = None
        for step in range(budget):
            logits, self_kv, cross_kv = self._step(tokens, hidden, mask, self_kv, cross_kv)  # (k, V)
            vocab = logits.shape[-1]
            scores = (log_softmax(logits) + running_scores[:, None]).reshape(-1)  # (k*V,)
            cand = topk(scores, keep)  # (2k,)
            cand_scores, cand_beam, cand_token = scores[cand], cand // vocab, cand % vocab
            hits = (cand_token == self.eos_id) | (step + 1 >= budget)  # eos or max length
            # running beams for the next step: the best k candidates that did not stop
            alive = cand_scores + hits.astype(np.float32) * NEG
            pick = topk(alive, k)
            new_running = [running[cand_beam[j]] + [int(cand_token[j])] for j in pick]
            # finished hypotheses: merge the top-k candidates that stopped, length-normalised
            norm = cand_scores / float((step + 1) ** length_penalty)
            if is_finished.all() and early_stopping is True:
                norm = norm + NEG
            if not unsatisfied:
                norm = norm + NEG
            just = hits & (np.arange(keep) < k)
            norm = norm + (~just).astype(np.float32) * NEG
            merged_scores = np.concatenate([finished_scores, norm.astype(np.float32)])
            merged_ids = finished + [running[cand_beam[j]] + [int(cand_token[j])] for j in range(keep)]
            merged_done = np.concatenate([is_finished, just])
            best = topk(merged_scores, k)
            finished = [merged_ids[j] for j in best]
            finished_scores, is_finished = merged_scores[best], merged_done[best]
            # the cache follows the beams it continues
            sources = cand_beam[pick]
            self_kv = [kv[sources] for kv in self_kv]
            running, running_scores = new_running, alive[pick].astype(np.float32)
            tokens = np.array([seq[-1] for seq in running], dtype=np.int64)
            # stop as transformers does
            best_possible = running_scores[0] / float((step + 1) ** length_penalty)
            worst = np.where(is_finished, finished_scores.min(), NEG)
            unsatisfied = unsatisfied and bool(np.any(best_possible > worst))
            if not unsatisfied or (is_finished.all() and early_stopping is True) or hits.all():
                break
        return [Beam(ids, float(s)) for ids, s in zip(finished, finished_scores)]
