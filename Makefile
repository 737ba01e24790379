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

.PHONY: venv demo demo-clean test lint boutiques models bench bench-quick device-wheels clean

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

# retrain the shipped latent models (GPU recommended: ~5 min on an H200, hours on 2 CPU cores;
# the VAE-GAN decoder refinement then runs on the CPU in any case: ~6 min on 2 cores)
models: $(BIN)/.installed
	PYTHON=$(BIN)/python scripts/train_models.sh work/models $(or $(DEVICE),auto)

# speed and memory benchmarks (not tests): see benchmarks/README.md
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_glm.py --nprocs $(NPROCS)

bench-quick: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_glm.py --quick --nprocs $(NPROCS)

# wheels the device machines' image (Python 3.12, torch + CUDA) lacks, for scripts/device_checks.sh
# (git-ignored; carry .whl/py312 with the device run)
DEVICE_WHEELS = pybids==0.22.0 nilearn==0.14.1 nibabel==5.4.2 isal sqlalchemy greenlet \
	bidsschematools frozendict num2words==0.5.6 universal_pathlib pathlib_abc bids-validator \
	templateflow acres importlib_resources
device-wheels: $(BIN)/.installed
	$(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux_2_28_x86_64 --dest .whl/py312 $(DEVICE_WHEELS)

lint: $(BIN)/.installed
	$(BIN)/ruff check bids_facedecode tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
