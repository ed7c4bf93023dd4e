# pdc: the two commands a fresh machine needs are `make demo` and `make test`;
# both install into .venv first when needed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch (an unpinned torch pulls several GB of CUDA packages).
TORCH  ?= torch==2.13.0
RUN    ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)
PYTEST_ARGS ?=
GRID   ?= shell/grid.conf
GRID_RUN ?= runs/grid

.PHONY: install test test-fast demo bench bench-extract bench-eval bench-edge bench-train pi-bench clean help table3 table4

help:
	@echo "make demo   harvest -> extract -> train x3 -> eval -> table -> export -> bench ($(RUN))"
	@echo "make test   the test suite"
	@echo "make table3 / table4  the paper's grid from $(GRID) into $(GRID_RUN) (finished cells are skipped)"
	@echo "make install  build $(VENV) (torch CPU, pinned dependencies)"
	@echo "make bench  bench-extract (extract against a local server) and bench-eval (batched vs per-record)"
	@echo "make bench-train  pdc train against Seq2SeqTrainer; CodeT5-base-shaped step time"
	@echo "make bench-edge   PyTorch vs ONNX fp32 vs int8 on a CodeT5-base-shaped model"
	@echo "make pi-bench PI=user@host  pdc bench of an export over SSH, beside the same bench here"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

test: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -q -m "not slow" $(PYTEST_ARGS)

demo: install
	PATH="$(abspath $(BIN)):$$PATH" bash shell/demo.sh "$(RUN)"

table3: install
	PATH="$(abspath $(BIN)):$$PATH" bash shell/grid.sh table3 "$(GRID)" "$(GRID_RUN)"

table4: install
	PATH="$(abspath $(BIN)):$$PATH" bash shell/grid.sh table4 "$(GRID)" "$(GRID_RUN)"

bench: bench-extract bench-eval

bench-extract: install
	$(BIN)/python bench/extract_bench.py

bench-eval: install
	$(BIN)/python bench/eval_bench.py

# CodeT5-base-shaped student: PyTorch eager vs ONNX fp32 vs int8 (edge runtime), 64 -> 128 tokens (~10 min).
bench-edge: install
	$(BIN)/python bench/edge_bench.py

# pdc bench of an export on a remote machine over SSH, beside the same bench here:
#   make pi-bench PI=pi@raspberrypi MODEL=runs/onnx/int8 PROBLEMS=valid.jsonl [OUT=dir]
MODEL    ?= runs/latest/export/int8
PROBLEMS ?= runs/latest/bench-problems.jsonl
pi-bench: install
	@test -n "$(PI)" || { echo "Error: set PI=user@host (and MODEL=, PROBLEMS=)" >&2; exit 2; }
	PATH="$(abspath $(BIN)):$$PATH" bash shell/pi-bench.sh "$(PI)" "$(MODEL)" "$(PROBLEMS)" $(OUT)

# Not part of `make bench`: several minutes of CPU. Needs accelerate (the [bench] extra) for Seq2SeqTrainer.
bench-train: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/train_bench.py $(BENCH_ARGS)

clean:
	rm -rf runs .pytest_cache build src/*.egg-info
