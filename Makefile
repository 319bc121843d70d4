# The two commands of the README:
#   make run    install into ./.venv, then run the main job (the shipped teachers -> a
#               distilled student against the student alone, about ten minutes)
#   make test   install into ./.venv (with the test tools), then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The real image data of this workplace, if it is beside the checkout; elsewhere
# the main job reads CIFAR-10 through tensorflow-datasets (the teachers' dataset).
DATA_DIR ?= $(firstword $(wildcard ../shared/data/cifar10-jpeg))
RUN_ARGS ?=
TEST_ARGS ?=

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED = 1

.PHONY: install run test clean

$(BIN)/.kdkeras-installed: requirements.txt requirements-dev.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(BIN)/.kdkeras-installed

run: install
	$(BIN)/python experiments/main.py $(if $(DATA_DIR),--data_dir=$(DATA_DIR)) $(RUN_ARGS)

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q $(TEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
