# One entry per habit. `make run` and `make test` are the two commands of the README.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= var/demo
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run serve test test-fast lint fmt typecheck eval bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0   # CPU build; any other spec pulls CUDA
	$(BIN)/python -m pip install -q -e ".[dev,ner,postgres]"

# The main job on the embedded default: ingest the bundled sample, then search it.
run: install
	$(BIN)/feedback-ai ingest data/sample/banking77_sample.jsonl --data-dir $(DATA)
	$(BIN)/feedback-ai search "my card has not arrived yet" --data-dir $(DATA)
	$(BIN)/feedback-ai search "why was I charged a fee for withdrawing cash" --data-dir $(DATA) --collapse
	@echo "Serve it: $(BIN)/feedback-ai serve --data-dir $(DATA)   (API key: $(DATA)/default_admin_key)"

serve: install
	$(BIN)/feedback-ai serve --data-dir $(DATA)

test: install
	$(BIN)/python -m pytest

test-fast:
	$(BIN)/python -m pytest -m "not slow"

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck:
	$(BIN)/mypy

eval:
	$(BIN)/python -m eval.retrieval
	$(BIN)/python -m eval.bench_embed

bench:
	$(BIN)/python -m eval.bench_store --n 100000
	$(BIN)/python -m eval.bench_api --n 100000

clean:
	rm -rf var/demo .pytest_cache
