# pdc: the two commands a fresh machine needs are `make demo` and `make test`;
# both install into .venv first when needed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch (an unpinned torch pulls several GB of CUDA packages).
TORCH  ?= torch==2.13.0
RUN    ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)
PYTEST_ARGS ?=

.PHONY: install test test-fast demo bench bench-extract bench-train clean help

help:
	@echo "make demo   harvest -> extract -> train x3 -> eval -> table -> export -> bench ($(RUN))"
	@echo "make test   the test suite"
	@echo "make install  build $(VENV) (torch CPU, pinned dependencies)"
	@echo "make bench  the benchmarks (bench-extract: extract throughput against a local server;"
	@echo "            bench-train: pdc train against Seq2SeqTrainer, CodeT5-base-shaped step time)"

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

bench: bench-extract

bench-extract: install
	$(BIN)/python bench/extract_bench.py

# Not part of `make bench`: several minutes of CPU. Needs accelerate (the [bench] extra) for Seq2SeqTrainer.
bench-train: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/train_bench.py $(BENCH_ARGS)

clean:
	rm -rf runs .pytest_cache build src/*.egg-info
