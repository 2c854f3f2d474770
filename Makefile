# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages: speech synthesis for the sample and the tests, sox for measuring audio,
# redis-server and chromium for the service tests (scaled mode, web page).
SYSTEM_PACKAGES := espeak-ng sox festival festvox-us-slt-hts flite redis-server chromium
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test test-fast test-slow lint install system-deps samples bench clean

demo: install samples
	@mkdir -p outputs
	$(BIN)/mouthpiece generate --image samples/portrait.jpg --audio samples/speech.wav \
		--out outputs/demo.mp4
	@echo "wrote outputs/demo.mp4"

test: install samples
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-slow: install samples
	$(BIN)/python -m pytest -q -m slow

install: system-deps $(STAMP)

system-deps:
	@missing=""; for pkg in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

$(STAMP): pyproject.toml scripts/install_face_models.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,tts,train,service,fl]'
	$(BIN)/python scripts/install_face_models.py
	$(BIN)/python -c 'from mouthpiece.speech.decoders import word_dictionary; word_dictionary()'
	touch $(STAMP)

samples: samples/portrait.jpg samples/speech.wav

samples/portrait.jpg: | $(STAMP)
	@mkdir -p samples
	$(BIN)/python -c "import shutil, matplotlib.cbook as c; shutil.copy(c.get_sample_data('grace_hopper.jpg', asfileobj=False), 'samples/portrait.jpg')"

samples/speech.wav: samples/speech.txt
	espeak-ng -v en-us -s 150 -w $@ -f $<

bench: install samples
	$(BIN)/python bench/bench_engine.py

clean:
	rm -rf outputs .pytest_cache
