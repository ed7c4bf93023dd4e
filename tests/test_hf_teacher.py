"""The hf: teacher: a tiny GPT-2 saved to disk and loaded the way a hub id is, generating in batches.

One 1-layer GPT-2 (byte-level BPE tokenizer from pdc.students) is trained
for a few dozen steps to answer two fixed prompts: one answer ends with EOS,
the other runs on into a next "Problem:" (the text prompt's stop string).
Everything else it is asked gets whatever an almost untrained model writes,
which must come back as a failure record, never a crash.
"""

from __future__ import annotations

import shutil

import pytest

from pdc.errors import PdcError
from pdc.teachers import TeacherFailure

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny models, one thread

PARSE_KINDS = {"empty_response", "truncated", "no_pseudocode", "no_code", "unparsable_code"}

ONE = {"id": "one", "lang": "python", "nl": "Return the number one."}
TWO = {"id": "two", "lang": "python", "nl": "Return the number two, please."}
# what the model is trained to write after the text prompt's "Pseudocode:\n1."
ANSWER_ONE = " Return one.\nCode:\n```python\ndef one():\n    return 1\n```"
ANSWER_TWO = " Return two.\nCode:\n```python\ndef two():\n    return 2\n```\n\nProblem: Return three."
GO = {"id": "go", "lang": "go", "nl": "Reverse a string rune by rune and return the reversed string."}
JS = {"id": "js", "lang": "javascript", "nl": "Sum."}
COBOL = {"id": "cobol", "lang": "cobol", "nl": "Add two numbers."}
HUGE = {"id": "huge", "lang": "python", "nl": "Add the numbers. " * 400}
MAX_TOKENS = 48


def _save_tiny_gpt2(out, seed: int = 0) -> None:
    """A 1-layer GPT-2 with pdc's scratch byte-level BPE tokenizer, saved like any hub model."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from pdc.prompt import load_prompt
    from pdc.students import train_tokenizer

    prompt = load_prompt()
    texts = [prompt.text(r, 1) for r in (ONE, TWO, GO, JS)] + [ANSWER_ONE, ANSWER_TWO] * 3
    tokenizer = train_tokenizer(texts, vocab_size=400)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def _overfit(teacher, pairs, steps: int = 300) -> None:
    """Train teacher.lm in place until greedy decoding of each (prompt ids, answer ids) is exact."""
    width = max(len(p) + len(a) for p, a in pairs)
    ids = torch.full((len(pairs), width), teacher.pad_id)  # (B, T)
    labels = torch.full((len(pairs), width), -100)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (p, a) in enumerate(pairs):  # left-padded, as at generation time; loss on the answer only
        start = width - len(p) - len(a)
        ids[row, start:] = torch.tensor(p + a)
        labels[row, width - len(a):] = torch.tensor(a)
        mask[row, start:] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    lm = teacher.lm
    lm.train()
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(lm.parameters(), lr=1e-2, weight_decay=0.0)
    for step in range(steps):
        out = lm(input_ids=ids, attention_mask=mask, position_ids=position_ids, labels=labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if step % 10 == 9:
            predicted = out.logits[:, :-1].argmax(-1)
            target = labels[:, 1:]
            if bool((predicted[target != -100] == target[target != -100]).all()) and out.loss.item() < 0.05:
                break  # every answer token is the argmax, with a margin
    else:
        pytest.fail(f"the tiny GPT-2 did not learn its answers in {steps} steps (loss {out.loss.item():.3f})")
    lm.eval()


@pytest.fixture(scope="module")
def untrained_dir(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("tiny-gpt2")
    _save_tiny_gpt2(out)
    return str(out)


@pytest.fixture(scope="module")
def trained_dir(untrained_dir, tmp_path_factory) -> str:
    """The tiny GPT-2 after it learnt ANSWER_ONE (then EOS) for ONE and ANSWER_TWO (no EOS) for TWO at 0 shots."""
    from pdc.teachers.hf import HfTeacher

    teacher = HfTeacher(untrained_dir, shots=0, device="cpu")
    encode = teacher.tokenizer.encode
    eos = teacher.tokenizer.eos_token_id
    pairs = [(teacher.encode(teacher.render(ONE)), encode(ANSWER_ONE, add_special_tokens=False) + [eos]),
             (teacher.encode(teacher.render(TWO)), encode(ANSWER_TWO, add_special_tokens=False))]
    _overfit(teacher, pairs)
    out = tmp_path_factory.mktemp("tiny-gpt2-trained")
    teacher.lm.save_pretrained(out)
    teacher.tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def trained(trained_dir):
    from pdc.teachers.hf import HfTeacher

    return HfTeacher(trained_dir, shots=0, max_tokens=MAX_TOKENS, batch_size=8, device="cpu")


def test_success_path_through_the_hub_id_code_path(trained, trained_dir):
    (one,) = trained.annotate_batch([(ONE, "t:1")])
    assert one["pseudocode"] == ["Return one."]
    assert one["teacher_code"] == "def one():\n    return 1"
    usage = one["usage"]
    assert usage["cached"] is False and usage["prompt_tokens"] > 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert trained.name == "hf:" + trained_dir and trained.model == trained_dir
    assert trained.prompt_id_for("go") == "paper-v1/go/0-shot"
    config = trained.config()
    assert config["prompt_format"] == "text" and config["dtype"] == "float32" and config["device"] == "cpu"
    assert {"model", "shots", "max_tokens", "temperature", "seed", "batch_size"} <= set(config)


def test_mixed_batch_one_result_per_input_in_order(trained):
    items = [(GO, "t:1"), (ONE, "t:2"), (COBOL, "t:3"), (JS, "t:4"), (HUGE, "t:5"), (TWO, "t:6")]
    results = trained.annotate_batch(items)
    assert len(results) == len(items)
    go, one, cobol, js, huge, two = results
    # the two trained prompts succeed inside a left-padded batch of other lengths
    assert one["teacher_code"] == "def one():\n    return 1"
    assert two["teacher_code"] == "def two():\n    return 2" and two["pseudocode"] == ["Return two."]
    for failure in (go, js):
        assert isinstance(failure, TeacherFailure) and failure.kind in PARSE_KINDS
        assert failure.usage["prompt_tokens"] > 0 and failure.usage["completion_tokens"] > 0
    (alone,) = trained.annotate_batch([(TWO, "t:6")])
    assert two == alone  # same text and token counts as when asked alone
    assert isinstance(cobol, TeacherFailure) and cobol.kind == "unsupported_language" and cobol.usage is None
    assert isinstance(huge, TeacherFailure) and huge.kind == "context_length"
    assert "1024 positions" in huge.message


def test_finish_reason_stop_at_eos_stop_string_and_length(trained):
    one_ids, two_ids = (trained.encode(trained.render(r)) for r in (ONE, TWO))
    one, two = trained.generate([one_ids, two_ids])
    assert one.finish_reason == "stop" and one.text == ANSWER_ONE
    answer_ids = trained.tokenizer.encode(ANSWER_ONE, add_special_tokens=False)
    assert one.completion_tokens == len(answer_ids) + 1  # the EOS counts
    assert two.finish_reason == "stop" and two.text == ANSWER_TWO.split("\nProblem:")[0]
    assert two.completion_tokens < MAX_TOKENS  # the stop string ended generation

    from pdc.teachers.hf import HfTeacher

    short = HfTeacher(trained.path, shots=0, max_tokens=4, device="cpu")
    (cut,) = short.generate([one_ids])
    assert cut.finish_reason == "length" and cut.completion_tokens == 4
    with pytest.raises(TeacherFailure) as failure:
        short.annotate(ONE, "t:1")
    assert failure.value.kind == "truncated" and failure.value.usage["completion_tokens"] == 4


def test_batched_greedy_equals_one_at_a_time(untrained_dir):
    from pdc.teachers.hf import HfTeacher

    teacher = HfTeacher(untrained_dir, shots=1, max_tokens=12, batch_size=4, device="cpu")
    prompts = [teacher.encode(teacher.render(r)) for r in (GO, ONE, JS, TWO, dict(ONE, nl="x"))]
    assert len({len(p) for p in prompts}) == len(prompts)  # all lengths differ: real padding
    batched = teacher.generate(prompts)
    single = [teacher.generate([p])[0] for p in prompts]
    assert batched == single
    assert all(c.completion_tokens <= 12 for c in batched)


def test_untrained_model_output_is_a_failure_with_usage(untrained_dir):
    from pdc.extract import extract_record
    from pdc.teachers.hf import HfTeacher

    teacher = HfTeacher(untrained_dir, shots=1, max_tokens=8, device="cpu")
    results = teacher.annotate_batch([(ONE, "t:1"), (GO, "t:2")])
    for failure in results:
        assert isinstance(failure, TeacherFailure) and failure.kind in PARSE_KINDS
        assert failure.usage["prompt_tokens"] > 0 and failure.usage["cached"] is False
    out = extract_record(teacher, ONE, "t:1")  # the sequential path pdc extract already has
    assert out["status"] == "error" and out["error"]["type"] in PARSE_KINDS
    assert out["teacher"] == "hf:" + untrained_dir and out["prompt_id"] == "paper-v1/python/1-shot"
    assert out["usage"]["completion_tokens"] > 0 and out["teacher_config"]["shots"] == 1
    assert teacher.usage["total_tokens"] > 0


def test_sampling_is_seeded(untrained_dir):
    from pdc.teachers.hf import HfTeacher

    teacher = HfTeacher(untrained_dir, shots=0, max_tokens=10, temperature=1.0, seed=3, device="cpu")
    prompts = [teacher.encode(teacher.render(r)) for r in (ONE, GO)]
    assert teacher.generate(prompts) == teacher.generate(prompts)


def test_chat_template_path(untrained_dir, tmp_path):
    from pdc.teachers.hf import HfTeacher

    chat = tmp_path / "chat"
    shutil.copytree(untrained_dir, chat)
    template = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
                "{% if add_generation_prompt %}<s>assistant\n{% endif %}")
    _set_template(chat, template)
    teacher = HfTeacher(str(chat), shots=1, max_tokens=8, device="cpu")
    assert teacher.config()["prompt_format"] == "chat"
    text = teacher.render(ONE)
    assert text.startswith("<s>system\nYou turn a programming problem")
    assert text.count("<s>user\n") == 2 and text.endswith("Language: python</s>\n<s>assistant\n")
    assert not text.rstrip().endswith("1.")  # not the text prompt's tail
    (result,) = teacher.annotate_batch([(ONE, "t:1")])
    assert isinstance(result, TeacherFailure) and result.kind in PARSE_KINDS

    plain = HfTeacher(untrained_dir, shots=1, max_tokens=8, device="cpu")
    assert plain.render(ONE).endswith("Language: python\nPseudocode:\n1.")

    # a template that refuses system turns gets the system message in the first user turn
    _set_template(chat, "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}"
                        "{% endif %}" + template)
    folded = HfTeacher(str(chat), shots=0, max_tokens=8, device="cpu")
    assert folded.config()["prompt_format"] == "chat-system-in-user"
    assert folded.render(ONE).startswith("<s>user\nYou turn a programming problem")


def _set_template(model_dir, template: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(model_dir)


def test_missing_model_is_a_one_line_error(tmp_path):
    from pdc.teachers.hf import HfTeacher

    missing = str(tmp_path / "no-such-model")
    with pytest.raises(PdcError) as error:
        HfTeacher(missing)
    assert missing in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(PdcError) as error:
        HfTeacher("pdc-tests/no-such-model")  # a hub id not in the local cache: no download
    assert "pdc-tests/no-such-model" in str(error.value) and "local Hugging Face cache" in str(error.value)


def test_get_teacher_passes_the_extract_options(untrained_dir):
    from pdc.teachers import get_teacher

    teacher = get_teacher("hf:" + untrained_dir, shots=0, prompt=None, max_tokens=7, temperature=0.0,
                          base_url=None, concurrency=8, batch_size=2, device="cpu")
    assert teacher.name == "hf:" + untrained_dir
    assert (teacher.shots, teacher.max_tokens, teacher.batch_size) == (0, 7, 2)


def test_out_of_memory_splits_the_chunk(untrained_dir, monkeypatch):
    from pdc.teachers.hf import HfTeacher

    teacher = HfTeacher(untrained_dir, shots=0, max_tokens=6, batch_size=4, device="cpu")
    prompts = [teacher.encode(teacher.render(r)) for r in (ONE, GO, JS)]
    expected = teacher.generate(prompts)
    real = teacher._generate_chunk

    def small_memory(chunk):
        if len(chunk) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(chunk)

    monkeypatch.setattr(teacher, "_generate_chunk", small_memory)
    assert teacher.generate(prompts) == expected


def test_extract_command_with_an_hf_teacher(trained_dir):
    import json

    from typer.testing import CliRunner

    from pdc.cli import app

    text = "".join(json.dumps(r) + "\n" for r in (ONE, GO))
    result = CliRunner().invoke(app, ["extract", "--teacher", f"hf:{trained_dir}", "--shots", "0",
                                      "--max-tokens", str(MAX_TOKENS)], input=text)
    assert result.exit_code == 3, result.output
    one, go = (json.loads(line) for line in result.stdout.splitlines())
    assert one["status"] == "ok" and one["teacher_code"] == "def one():\n    return 1"
    assert one["teacher"] == f"hf:{trained_dir}" and one["prompt_id"] == "paper-v1/python/0-shot"
    assert one["teacher_config"]["prompt_format"] == "text" and one["usage"]["completion_tokens"] > 0
    assert go["status"] == "error" and go["error"]["type"] in PARSE_KINDS
