# The two set-up commands (each creates .venv when needed and installs what it needs):
#   make demo   VAE vs GPM on the bundled digits data, ELBO table printed and written to results/quick/
#   make test   lint, format check, type check and the test suite
PYTHON ?= python3
# Where torch and torchvision come from. Default: PyPI, whose Linux wheels pull in CUDA (a .venv
# measured 6.1 GB, of which 3.2 GB NVIDIA libraries and 0.9 GB triton). Without a GPU, PyTorch's
# CPU-only wheel index leaves them out; it is read at the first install only (rm -rf .venv to switch):
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint slurm-up reproduce clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) )torch torchvision
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/memorybench run configs/quick.yaml

lint: $(STAMP)
	$(BIN)/ruff check memories benchmarks runners reports tests
	$(BIN)/ruff format --check memories benchmarks runners reports tests
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

# Everything, including slow tests and (when a SLURM cluster is up) the SLURM tests.
test-all: lint
	$(BIN)/pytest -q -m "not gpu"

# The reference study (docs/results/README.md): both suites of configs/reproduce/ on two local
# workers (about two hours on 2 CPU cores), then the report into docs/results/.
#   make reproduce DATA=DIR     (DIR holds binarized_mnist/ and omniglot/; default: $$MEMORYBENCH_DATA or ./data)
DATA ?=
REPRODUCE_OUT ?= results/reproduce
reproduce: $(STAMP)
	$(BIN)/memorybench run configs/reproduce/mnist.yaml $(if $(DATA),--data-root $(DATA) )--out $(REPRODUCE_OUT) --runner local --workers 2
	$(BIN)/memorybench run configs/reproduce/omniglot.yaml $(if $(DATA),--data-root $(DATA) )--out $(REPRODUCE_OUT) --runner local --workers 2
	$(BIN)/memorybench report $(REPRODUCE_OUT) --out docs/results --format md,latex,csv

# A one-node SLURM cluster on this machine (Debian/Ubuntu, as root), for trying --runner slurm.
slurm-up:
	bash runners/local_slurm.sh start

clean:
	rm -rf results .pytest_cache .mypy_cache .ruff_cache
