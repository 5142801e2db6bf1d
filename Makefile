# Two commands do everything on a fresh machine:
#   make demo   set up, then train the arithmetic task in-process (no Docker, no GPU, no Redis)
#   make test   set up, start Redis if none answers, run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
REDIS_PORT ?= 6379

.PHONY: setup demo test redis bench proto trl-baseline verifiers-env

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch; a bare `torch` would pull several GB of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[train,ludii,dev]"
	touch $@

demo: setup
	$(VENV)/bin/rlpr train --task arithmetic --algo ppo --arithmetic-model-size 2x64 --lr 3e-4 \
	    --steps 150 --out runs/demo

redis:
	@redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 \
	    --port $(REDIS_PORT) --save "" --appendonly no

test: setup redis verifiers-env
	$(PY) -m pytest -q -p no:cacheprovider --durations=15

bench: setup redis trl-baseline
	$(PY) bench/report.py

# TRL 0.9.6 (the last with the classic PPOTrainer.step) in its own venv, for bench/trainer.py --vs-trl.
trl-baseline: .venv-trl096/.installed

.venv-trl096/.installed:
	python3 -m venv .venv-trl096
	.venv-trl096/bin/pip install -q torch==2.13.0
	.venv-trl096/bin/pip install -q trl==0.9.6 transformers==4.44.2 accelerate==0.33.0 "numpy<2" "pyarrow<17" "datasets<3" rich
	touch $@

# verifiers (its Taskset API) in its own venv, with rlpr and integrations/rlpr-verifiers, for tests/test_verifiers_env.py.
verifiers-env: .venv-verifiers/.installed

.venv-verifiers/.installed: pyproject.toml integrations/rlpr-verifiers/pyproject.toml
	python3 -m venv .venv-verifiers
	.venv-verifiers/bin/pip install -q --upgrade pip
	.venv-verifiers/bin/pip install -q -e . -e integrations/rlpr-verifiers "verifiers>=0.4,<0.5"
	touch $@

proto: setup
	$(PY) proto/generate.py
