# The two commands of the README. Both build .venv first (scripts/setup.sh; a no-op when nothing changed).
PY := .venv/bin/python

.PHONY: setup course test llama-cpp-check lock clean

setup:
	@scripts/setup.sh

# Execute all five notebooks on the offline default; executed copies and the merged model land in runs/.
course: setup
	$(PY) scripts/run_course.py

# Unit tests, then every notebook executed on the offline default (the tiny slice, bundled data): nbmake runs the
# English edition; tests/test_zh_edition.py runs the Chinese one the same way and checks that it prints Chinese.
# Its own --basetemp: pytest prunes the shared /tmp/pytest-of-$USER, which breaks a run beside another one.
# A cell may take 900 s: the first notebook in a fresh work folder builds the tiny slice (30 s idle, minutes under load).
test: setup
	ERNIE_COURSE_WORK=$(CURDIR)/runs/test-work ERNIE_COURSE_SOLUTIONS=1 $(PY) -m pytest --nbmake --nbmake-timeout=900 --basetemp=$(CURDIR)/runs/pytest-tmp tests notebooks/en

# The GGUF files in llama.cpp itself: greedy answers must equal transformers'. Not in `make test`: it compiles
# llama-cpp-python from the converter's pinned source once (~20 min on 2 cores; cached in runs/llama-cpp).
# Writes bench/llama-cpp-check.log.
llama-cpp-check: setup
	$(PY) scripts/llama_cpp_check.py

# Rewrite constraints.txt from the current .venv (after changing a pin in requirements*.txt).
lock:
	@{ echo "# Every package of the CPU environment that CI tests, frozen by \`make lock\` (torch comes from scripts/setup.sh)."; \
	   echo "# pip constraints on our machines, so that CI and \`make course\` install the same versions every time."; \
	   $(PY) -m pip freeze --all --exclude-editable --exclude torch; } > constraints.txt

clean:
	rm -rf .venv runs
