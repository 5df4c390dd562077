# Quick start: `make demo`, then `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CAS    := $(VENV)/bin/cas
STAMP  := $(VENV)/.installed
DEMO   := .demo

SLY    := .venv-sly
SLY_STAMP := $(SLY)/.installed
DM     := .venv-dm
DM_STAMP := $(DM)/.installed
DVC    := .venv-dvc
DVC_STAMP := $(DVC)/.installed

.PHONY: demo test docs bench bench-train interop system-deps bench-deps clean

# apt-get the packages of $(1) (command:package pairs) whose command is missing, when root;
# otherwise a note that names them and $(2), what needs them.
define apt_missing
	@missing=""; for pair in $(1); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: install$$missing ($(2))"; fi; \
	fi
endef

# FUSE's user-space side (fusermount3) for the mount, and rsync for the tests of writers
# into it.
SYSTEM_TOOLS := fusermount3:fuse3 rsync:rsync
system-deps:
	$(call apt_missing,$(SYSTEM_TOOLS),the mount needs fuse3 and its tests rsync)

# restic, a peer in `bench.dedup --vs-restic` (benchmarks only: `make test` never needs it).
BENCH_TOOLS := restic:restic
bench-deps:
	$(call apt_missing,$(BENCH_TOOLS),bench.dedup --vs-restic needs it)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: system-deps $(STAMP)
	rm -rf $(DEMO)
	$(PY) -m bench.datagen sample $(DEMO)/sample
	$(CAS) --store $(DEMO)/store init
	$(CAS) --store $(DEMO)/store import $(DEMO)/sample --project demo
	@echo; echo '$$ cas ls'; $(CAS) --store $(DEMO)/store ls
	@echo; echo '$$ cas ls demo'; $(CAS) --store $(DEMO)/store ls demo
	@echo; echo '$$ cas ls demo/train'; $(CAS) --store $(DEMO)/store ls demo/train
	@echo; echo '$$ cas stats'; $(CAS) --store $(DEMO)/store stats

# The official Supervisely SDK, in a venv of its own (its pins must not move ours), for the
# test that opens a mounted project with sly.Project.
$(SLY_STAMP):
	$(PYTHON) -m venv $(SLY)
	$(SLY)/bin/python -m pip install -q supervisely pycocotools lxml
	touch $@

# Datumaro, likewise, for the interop tests: it writes the fixtures of its formats and reads
# our exports (about 20 s to install).
$(DM_STAMP):
	$(PYTHON) -m venv $(DM)
	$(DM)/bin/python -m pip install -q datumaro
	touch $@

# DVC, a peer in `bench.dedup --vs-dvc`, likewise in a venv of its own (benchmarks only).
$(DVC_STAMP):
	$(PYTHON) -m venv $(DVC)
	$(DVC)/bin/python -m pip install -q dvc
	touch $@

test: system-deps $(STAMP) $(SLY_STAMP) $(DM_STAMP)
	CAS_SLY_PYTHON=$(SLY)/bin/python CAS_DATUMARO_PYTHON=$(DM)/bin/python $(PY) -m pytest -q

# docs/reference.md from the CLI's own help, and the README's picture from `cas render` as the
# README's first block makes it (the tests fail when either differs from what this makes).
docs: $(STAMP)
	$(PY) -m cas.cli.reference > docs/reference.md
	rm -rf .docs-tmp
	$(PY) -m bench.datagen sample .docs-tmp/sample
	$(CAS) --store .docs-tmp/store init
	$(CAS) --store .docs-tmp/store import .docs-tmp/sample --project demo
	$(CAS) --store .docs-tmp/store export demo .docs-tmp/demo_coco --format coco
	$(CAS) --store .docs-tmp/store import .docs-tmp/demo_coco --project demo_coco
	$(CAS) --store .docs-tmp/store render demo_coco/train/street_002.jpg -o docs/coco_item.png --force
	rm -rf .docs-tmp

# Opt-in: our exports loaded by Ultralytics and torchvision (torch from this machine's disk,
# several GB: too heavy for every run). See tests/interop_clients.py.
INTEROP := .venv-interop
$(INTEROP)/.installed:
	$(PYTHON) -m venv $(INTEROP)
	$(INTEROP)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(INTEROP)/bin/python -m pip install -q ultralytics pycocotools
	touch $@

# label-studio-sdk (500 MB) writes a Label Studio export and reads ours: tests/interop_labelstudio.py.
LS := .venv-ls
$(LS)/.installed:
	$(PYTHON) -m venv $(LS)
	$(LS)/bin/python -m pip install -q label-studio-sdk
	touch $@

# The streaming benchmark (bench/train_s3.py): torch, WebDataset and LitData beside cas, in a
# venv of their own; opt-in, never part of `make test`.
TRAIN := .venv-train
$(TRAIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TRAIN)
	$(TRAIN)/bin/python -m pip install -q torch==2.14.1 -e '.[test]' webdataset litdata
	touch $@

bench-train: $(TRAIN)/.installed
	$(TRAIN)/bin/python -m bench.train_s3

interop: $(STAMP) $(INTEROP)/.installed $(LS)/.installed
	rm -rf .interop .interop-ls
	$(PY) -m tests.interop_clients export .interop
	$(INTEROP)/bin/python tests/interop_clients.py check .interop > .interop/check.log 2>&1 || \
	  { tail -20 .interop/check.log; exit 1; }
	@grep -E '^(ultralytics|torchvision)' .interop/check.log
	mkdir .interop-ls
	$(PY) -m tests.interop_labelstudio export .interop-ls
	$(LS)/bin/python tests/interop_labelstudio.py peer .interop-ls | tail -1
	$(PY) -m tests.interop_labelstudio check .interop-ls

bench: $(STAMP) bench-deps $(DVC_STAMP)
	$(PY) -m bench.dedup --vs-restic --vs-dvc
	$(PY) -m bench.fuse_read
	$(PY) -m bench.train_read
	$(PY) -m bench.s3_read
	$(PY) -m bench.convert
	$(PY) -m bench.share
	$(PY) -m bench.copy_in
	$(PY) -m bench.drop_in
	$(PY) -m bench.scale
	$(PY) -m bench.dedup --rss-files 200000

clean:
	rm -rf $(DEMO) .docs-tmp .bench-tmp .pytest_cache .hypothesis .interop .interop-ls $(SLY) $(DM) $(DVC) $(INTEROP) $(LS) $(TRAIN)
