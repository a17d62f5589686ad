# Spatiotemporal fusion QGIS plugin. On a fresh Debian 12 machine: `make demo` and `make test`
# (each does the set-up first: Debian packages, .venv with the pinned requirements).

VENV      := .venv
PY        := $(VENV)/bin/python
PLUGIN_ID := stf_fusion
STAMP     := $(VENV)/.setup-done
QGIS_PROCESS := scripts/qgis_process

.PHONY: setup test demo bench bench-learning bench-real bench-ceiling paper-tables package plugin-link clean qgis-list

setup: $(STAMP)

$(STAMP): requirements.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

plugin-link:
	@bash -c 'source scripts/env.sh'

test: setup plugin-link
	bash -c 'source scripts/env.sh && $(PY) -m pytest -q $(PYTEST_ARGS)'

demo: setup plugin-link
	bash scripts/demo.sh

bench: setup plugin-link
	bash -c 'source scripts/env.sh && $(PY) -m bench.run $(BENCH_ARGS)'

# does learning pay? every method on the realistic simulator and the control generator -> bench/results/learning.md
bench-learning: setup plugin-link
	bash -c 'source scripts/env.sh && $(PY) -m bench.learning --output learning $(LEARNING_ARGS)'

# fuse_auto and every method on the real series of ../shared/realdata (leave one date out) and the simulator
# -> bench/results/real.md
bench-real: setup plugin-link
	bash -c 'source scripts/env.sh && $(PY) -m bench.real $(REAL_ARGS)'

# how much of each learned start could a correction learned on other dates remove? -> bench/results/ceiling.md
bench-ceiling: setup plugin-link
	bash -c 'source scripts/env.sh && $(PY) -m bench.ceiling $(CEILING_ARGS)'

# the seed papers' evaluation protocols on a 17-date CIA-like synthetic series -> bench/results/paper_tables.md
paper-tables: setup plugin-link
	bash -c 'source scripts/env.sh && $(PY) -m bench.paper_tables $(PAPER_ARGS)'

package: setup
	$(PY) scripts/package.py $(PLUGIN_ID) build/$(PLUGIN_ID).zip

# qgis_process with the plugin enabled, e.g. make qgis-list; or call scripts/qgis_process directly.
qgis-list: setup plugin-link
	$(QGIS_PROCESS) list | grep -E '^\s+stf:'

clean:
	rm -rf build .qgis-settings
