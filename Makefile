# Two commands do all setup on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_ROOT := datasets/demo_day2night
VISDOM_PORT ?= 8097

.PHONY: venv provision demo style-demo test test-fast quality style bench clean-demo visdom visdom-stop

venv: $(STAMP)

# visdom 0.2.4 only ships an sdist whose setup.py imports pkg_resources, so it is built
# without isolation against setuptools<82 (see requirements.txt).
$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23" "setuptools<82" wheel
	$(PY) -m pip install -q --no-build-isolation -r requirements-dev.txt
	touch $(STAMP)

demo: venv
	$(PY) scripts/make_demo_dataset.py --out $(DEMO_ROOT)
	$(PY) train.py --config configs/demo.yaml
	$(PY) test.py --config configs/demo.yaml
	@echo
	@echo "Demo finished. Open results/demo_day2night/test_latest/index.html"
	@echo "(training log: checkpoints/demo_day2night/loss_log.txt)"

# Neural style transfer offline on generated images: Gatys on the pretrained FID Inception-v3,
# fast style and AdaIN trained briefly with random VGGs (no VGG weights here). A few minutes on 2 cores.
style-demo: venv
	$(PY) scripts/style_demo.py --out results/style_demo
	@echo
	@echo "Style demo finished. Open results/style_demo/index.html"

# What the browser and visdom tests need beyond pip: Debian's Chromium (apt) and visdom's JS/CSS
# (npm registry). Each step says plainly when it cannot be done here; the tests that need it then
# skip locally, and under CI (CI=true) a skipped test fails the run (tests/conftest.py).
provision: venv
	@bash scripts/install_browser.sh || echo "make: warning: Chromium could not be installed; the browser tests will skip (fail under CI)"
	@$(PY) scripts/setup_visdom_offline.py || echo "make: warning: visdom's assets could not be fetched; the visdom tests will skip (fail under CI)"
	@bash scripts/setup_slurm_local.sh --install-only || echo "make: warning: SLURM could not be installed; the SLURM tests will skip (fail under CI)"

# Every test, the slow ones too (the README's test command; .ci/run calls it).
test: provision
	$(PY) -m pytest -q -m "slow or not slow"

# The quick loop while developing: the tests not marked slow or distributed, nothing provisioned.
test-fast: venv
	$(PY) -m pytest -q

quality: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

style: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv
	$(PY) scripts/benchmark.py

# Live training plots at http://localhost:$(VISDOM_PORT). visdom's server fetches its JS/CSS from
# CDNs at start and fails offline, so they are first put in place from the npm registry (once).
visdom: venv
	$(PY) scripts/setup_visdom_offline.py
	PYTHON=$(PY) scripts/start_visdom.sh $(VISDOM_PORT)

visdom-stop:
	scripts/stop_visdom.sh $(VISDOM_PORT)

clean-demo:
	rm -rf $(DEMO_ROOT) checkpoints/demo_day2night results/demo_day2night
