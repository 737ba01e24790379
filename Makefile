# bids_facedecode — developer and demo entry points.
#   make demo   create .venv, simulate the default dataset, run both analysis levels
#   make test   create .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo
NPROCS ?= $(shell nproc 2>/dev/null || echo 2)
# the CPU build of torch (a local wheel on these machines; PyPI's default is the CUDA build)
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv demo demo-clean test lint boutiques models bench bench-quick clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test,fast]"
	touch $@

venv: $(BIN)/.installed

$(DEMO)/bids/dataset_description.json: | $(BIN)/.installed
	$(BIN)/bids_facedecode-simulate $(DEMO)/bids --nprocs $(NPROCS)

demo: $(BIN)/.installed $(DEMO)/bids/dataset_description.json
	$(BIN)/bids_facedecode $(DEMO)/bids $(DEMO)/derivatives participant --nprocs $(NPROCS) -w $(DEMO)/work -v
	$(BIN)/bids_facedecode $(DEMO)/bids $(DEMO)/derivatives group -v
	@echo
	@echo "Outputs:       $(abspath $(DEMO))/derivatives"
	@echo "Reports:       $$(ls $(abspath $(DEMO))/derivatives/*.html | tr '\n' ' ')"

demo-clean:
	rm -rf $(DEMO)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(NPROCS) -q

boutiques: $(BIN)/.installed
	$(BIN)/python -m bids_facedecode.boutiques boutiques.json

# retrain the shipped latent models (GPU recommended: ~5 min on an H200, hours on 2 CPU cores)
models: $(BIN)/.installed
	PYTHON=$(BIN)/python scripts/train_models.sh work/models $(or $(DEVICE),auto)

# speed and memory benchmarks (not tests): see benchmarks/README.md
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_glm.py --nprocs $(NPROCS)

bench-quick: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_glm.py --quick --nprocs $(NPROCS)

lint: $(BIN)/.installed
	$(BIN)/ruff check bids_facedecode tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
