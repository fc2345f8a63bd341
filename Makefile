# Two commands run the whole course:   make lab   (JupyterLab)   and   make test   (every test).
# Both create the project-local environment .venv/ first; that step is skipped when nothing changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup lab test train lint clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml tools/install_learn2learn.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch and torchvision are installed together so that pip picks a pair that imports together.
	$(BIN)/python -m pip install --quiet torch torchvision
	$(BIN)/python -m pip install --quiet -e '.[course]'
	$(BIN)/python tools/install_learn2learn.py
	touch $(STAMP)

# JupyterLab refuses to run as root unless told to (containers, CI machines).
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(BIN)/jupyter lab $(LAB_ARGS) notebooks/

test: setup
	bash tools/ensure_chromium.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The course's main job without a browser: meta-train on the embedded glyph set, then evaluate.
train: setup
	$(BIN)/python -m fewshot_course train --method protonet --dataset glyphs --steps 300
	$(BIN)/python -m fewshot_course evaluate --method protonet --dataset glyphs --episodes 600

lint: setup
	$(BIN)/ruff check fewshot_course tests benchmarks tools

clean-venv:
	rm -rf $(VENV)
