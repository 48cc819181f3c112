# ctmri: every stage of the study is a file target; `make reproduce` walks the DAG through papermill.
#   make setup | test | test-fast | reproduce [PROFILE=cpu] | reproduce-min | gpu-check | demo | bench | lab | clean
# ROOT is where data/, runs/ and figures/ go (default: this folder); tests use a scratch ROOT.

SHELL      := /bin/bash
PROFILE    ?= cpu
ROOT       ?= .
DATASET    ?= phantom
DATA_DIR   ?=
DIRECTION  ?= mr2ct
PYTHON3    ?= python3

VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.ctmri-setup
export CTMRI_ROOT := $(abspath $(ROOT))
export PYDEVD_DISABLE_FILE_VALIDATION := 1

PAPERMILL  = $(PY) -m papermill --no-progress-bar --log-level WARNING -k python3
RUN        := $(ROOT)/runs/$(PROFILE)
NBOUT      := $(RUN)/notebooks
# Generated, never kept by hand (`python -m ctmri.make_vars`): METHODS, SAMPLERS_<method> and SAMPLERS from the sampler
# registry, and LIB_<notebook>: the package files each stage imports, transitively, its prerequisites.
MAKE_VARS  := build/make/vars.mk

# A bad PROFILE / DATASET / DIRECTION / DATA_DIR stops make with one sentence before anything runs or is created
# (python -m ctmri.check_args); skipped before `make setup` has made the venv.
NO_ARGS    := setup clean test test-fast lab print-%
quote       = '$(subst ','\'',$(1))'
ifneq ($(filter-out $(NO_ARGS),$(or $(MAKECMDGOALS),setup)),)
ifneq ($(wildcard $(PY)),)
ARGS_PROBLEM := $(shell $(PY) -m ctmri.check_args --make --profile $(call quote,$(PROFILE)) \
  --dataset $(call quote,$(DATASET)) --direction $(call quote,$(DIRECTION)) --data-dir $(call quote,$(DATA_DIR)))
$(if $(ARGS_PROBLEM),$(error $(ARGS_PROBLEM)))
endif
endif
ifneq ($(filter-out setup clean,$(or $(MAKECMDGOALS),setup)),)
-include $(MAKE_VARS)
endif
$(MAKE_VARS): $(wildcard lib/ctmri/*.py lib/ctmri/*/*.py notebooks/*.ipynb) | $(STAMP)
	@mkdir -p $(@D)
	@$(PY) -m ctmri.make_vars notebooks > $@.tmp && mv $@.tmp $@

DATA       := $(ROOT)/data/processed/$(PROFILE)/manifest.json
CKPTS      := $(foreach m,$(METHODS),$(RUN)/checkpoints/$(m).trained)
SAMPLES    := $(foreach s,$(SAMPLERS),$(RUN)/samples/$(s).npz)
METRICS    := $(RUN)/metrics.csv
FIGURES    := $(RUN)/figures.done
EXPLORE    := $(NBOUT)/05_explore.html
DOSE       := $(RUN)/dose.csv


# Run one notebook through papermill, export HTML, and log the stage's wall time: "<stage> <seconds> s", followed by
# the note the stage wrote to $CTMRI_STAGE_NOTE, if any (training: "precision=fp32|bf16").
# $(1) notebook, $(2) output name, $(3) parameters
define run_notebook
	@mkdir -p $(NBOUT)
	@start=$$(date +%s); note=$(abspath $(NBOUT))/.$(2).note; rm -f $$note; \
	CTMRI_STAGE_NOTE=$$note $(PAPERMILL) $(1) $(NBOUT)/$(2).ipynb -p profile $(PROFILE) $(3) && \
	$(PY) -m jupyter nbconvert --to html --log-level WARN $(NBOUT)/$(2).ipynb >/dev/null 2>&1; \
	status=$$?; extra=$$(cat $$note 2>/dev/null); rm -f $$note; \
	echo "$(2) $$(( $$(date +%s) - start )) s$${extra:+ $$extra}" | tee -a $(RUN)/stage_seconds.txt; exit $$status
endef

.PHONY: setup test test-fast reproduce reproduce-min gpu-check demo data train sample evaluate figures explore bench lab clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/torch.txt requirements/no-deps.txt
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/torch.txt
	$(PY) -m pip install --quiet -e '.[dev,dose]'
	$(PY) -m pip install --quiet --no-deps -r requirements/no-deps.txt  # their own deps: pydantic-ai, SDKs, ...
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ctmri)" >/dev/null
	@touch $@

# ---- the study's DAG ------------------------------------------------------------------------
data: $(DATA)
train: $(CKPTS)
sample: $(SAMPLES)
evaluate: $(METRICS)
figures: $(FIGURES)
explore: $(EXPLORE)

$(DATA): notebooks/00_prepare_data.ipynb $(LIB_00_prepare_data) | $(STAMP)
	$(call run_notebook,$<,00_prepare_data,-p dataset $(DATASET) -p data_dir "$(DATA_DIR)" -p direction $(DIRECTION))

# A method is trained when its `.trained` marker exists. Without the marker (never trained, or a
# run was killed) training resumes from the last checkpoint; with a stale marker (inputs changed)
# it starts afresh.
$(RUN)/checkpoints/%.trained: notebooks/01_train.ipynb $(DATA) $(LIB_01_train) | $(STAMP)
	$(eval RESUME := $(if $(wildcard $@),False,True))
	@rm -f $@
	$(call run_notebook,$<,01_train_$*,-p method $* -p resume $(RESUME))
	@touch $@

$(foreach m,$(METHODS),$(foreach s,$(SAMPLERS_$(m)),$(eval $(RUN)/samples/$(s).npz: $(RUN)/checkpoints/$(m).trained)))

$(RUN)/samples/%.npz: notebooks/02_sample.ipynb $(LIB_02_sample) | $(STAMP)
	$(call run_notebook,$<,02_sample_$*,-p sampler $*)

$(METRICS): notebooks/03_evaluate.ipynb $(SAMPLES) $(LIB_03_evaluate) | $(STAMP)
	$(call run_notebook,$<,03_evaluate,)

$(FIGURES): notebooks/04_figures.ipynb $(METRICS) $(LIB_04_figures) | $(STAMP)
	$(call run_notebook,$<,04_figures,)
	@mkdir -p $(ROOT)/figures/$(PROFILE)
	cp $(RUN)/summary.md $(RUN)/summary.csv $(RUN)/claims.md $(RUN)/claims.json $(RUN)/patients.csv \
	  $(RUN)/uncertainty.csv $(RUN)/convergence.csv $(RUN)/calibration.md $(RUN)/calibration.csv $(RUN)/stage_seconds.txt \
	  $(ROOT)/figures/$(PROFILE)/
	@touch $@

# The explorer notebook, executed and exported with its self-contained animation (plays offline).
$(EXPLORE): notebooks/05_explore.ipynb $(SAMPLES) $(LIB_05_explore) | $(STAMP)
	$(call run_notebook,$<,05_explore,)

# 06_dose (issue 18): plans on the CT recomputed on the sCTs (pyRadPlan); dose table and figures.
$(DOSE): notebooks/06_dose.ipynb $(METRICS) $(LIB_06_dose) | $(STAMP)
	$(call run_notebook,$<,06_dose,)
	@mkdir -p $(ROOT)/figures/$(PROFILE)
	cp $(RUN)/dose.csv $(RUN)/dose_summary.md $(RUN)/dose_uncertainty.csv $(RUN)/stage_seconds.txt \
	  $(ROOT)/figures/$(PROFILE)/

reproduce: $(FIGURES) $(EXPLORE) $(DOSE)
	@echo "Done: $(RUN)/summary.md, $(RUN)/claims.md, $(ROOT)/figures/$(PROFILE)/ (stage times: $(RUN)/stage_seconds.txt)"

reproduce-min:
	$(MAKE) reproduce PROFILE=smoke

# Ten minutes from clone to a real reverse diffusion: the demo profile's data (the cpu phantom), the cpu study's DDPM
# weights committed in weights/demo/ (no training) and the DDPM-family samplers, then the explorer notebook.
demo: setup
	@start=$$(date +%s); $(MAKE) data PROFILE=demo && mkdir -p $(ROOT)/runs/demo/checkpoints && \
	cp weights/demo/ddpm.pt $(ROOT)/runs/demo/checkpoints/ddpm.pt && touch $(ROOT)/runs/demo/checkpoints/ddpm.trained && \
	$(MAKE) explore PROFILE=demo SAMPLERS="$(SAMPLERS_ddpm)" && \
	echo "demo: $$(( $$(date +%s) - start )) s. Open $(ROOT)/runs/demo/notebooks/05_explore.html, or run \
	\`make lab\` and open notebooks/05_explore.ipynb (profile = \"demo\")."

# On a lent GPU: the gpu profile's whole pipeline at 256² and reduced steps (profile gpu-check, config.py); stage
# times in runs/gpu-check/stage_seconds.txt, GPU memory sampled each second in runs/gpu-check/gpu_memory.csv.
gpu-check: setup
	@mkdir -p $(ROOT)/runs/gpu-check
	@nvidia-smi --query-gpu=timestamp,name,memory.used,memory.total,utilization.gpu --format=csv -l 1 \
	  > $(ROOT)/runs/gpu-check/gpu_memory.csv 2>&1 & mon=$$!; \
	$(MAKE) reproduce PROFILE=gpu-check; status=$$?; kill $$mon 2>/dev/null; exit $$status

# ---- tests -------------------------------------------------------------------------------------
TEST_ROOT := $(CURDIR)/build/test-root

# Everything, the notebook pipeline once (tests/test_notebook_pipeline.py): 14 min from a fresh clone on 2 cores.
test: setup
	$(PY) -m pytest tests -q

# The inner loop: unit, analytic and contract tests, no pipeline stage (marker `slow`): ~2 min on 2 cores.
test-fast: setup
	$(PY) -m pytest tests -q -m "not slow"

# Benchmarks of the profile's trained run (after `make reproduce PROFILE=...`): benchmarks/results/results.md|json
# and quality_vs_nfe.png. BENCH_ARGS passes options on, e.g. BENCH_ARGS="--only quality --mc 4" (run_all.py --help).
BENCH_ARGS ?=
bench: setup
	$(PY) benchmarks/run_all.py --profile $(PROFILE) $(BENCH_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf runs data/processed data/raw build figures/smoke

# `make print-VAR`: the value of a (generated) variable, e.g. `make print-SAMPLERS_vesde`.
print-%:
	@echo '$($*)'
