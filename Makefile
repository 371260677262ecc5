# The two quickstart commands: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e '.[dev,monitoring,spark]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/retain demo

test: install
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) .retain-test
