# Thin wrappers around bootstrap.py (which needs only python3): each target sets up .venv on first use.
PY ?= python3
PROFILE ?= auto
JOBS ?= 1

.PHONY: run test setup release grade bench clean
run:      ## execute every notebook (papermill), write build/ with report.json + report.md
	$(PY) bootstrap.py run --profile $(PROFILE) --jobs $(JOBS) --out build
test:     ## unit tests + nbval over every notebook in the ci profile (what CI runs)
	$(PY) bootstrap.py test
setup:    ## only create .venv and install the pinned dependencies
	$(PY) bootstrap.py setup
bench:    ## run the benchmarks, print their JSON lines
	for b in benchmarks/bench_*.py; do .venv/bin/python $$b || exit 1; done
clean:
	rm -rf build release grades .pytest_cache
