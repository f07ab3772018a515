# Two commands matter: `make demo` (the main job on bundled data) and `make test`.
# Both create .venv on first use, with every extra they use (trainer, plots, dev). torch is
# installed first, pinned to the CPU wheel (2.13.0): an unpinned torch would pull gigabytes of
# CUDA wheels. `pip install .` alone is the audit without torch.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: venv demo test bench fixtures clean docs

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[trainer,plots,dev]"
	touch $(STAMP)

venv: $(STAMP)

fixtures: $(STAMP)
	$(BIN)/python -m fixtures.build

demo: $(STAMP)
	$(BIN)/python -m fixtures.build
	$(BIN)/python -m audit.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info reports/*.json reports/*.md

docs: $(STAMP)
	$(BIN)/audit rules --markdown > docs/rules.md
