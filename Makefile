# Two entry points: `make demo` (set up, then run the bundled model on the bundled demo) and
# `make test` (set up, then run the test suite). Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch comes from the wheels on this machine kind; a plain `pip install torch` could pull a
# multi-gigabyte CUDA build from the registry instead.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test lint bench bench-runtime bench-gui soak model model-rcnn clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -c 'from engine.model import box_kernels; from engine.tracking import kalman_kernels; box_kernels.compile_now(); kalman_kernels.compile_now()'  # cached per machine
	touch $@

setup: $(VENV)/.installed

# The demo as a camera delivers it: played in real time (30 fps), the controller holding 25 frames
# per second, so the summary's latency is a camera viewer's (capture to result), not a queue's.
demo: setup
	mkdir -p runs
	$(PY) main.py run --realtime --record runs/demo.mp4 --events runs/demo-events.jsonl --target-fps 25
	@echo "annotated recording: runs/demo.mp4 (events: runs/demo-events.jsonl)"

test: setup
	bash scripts/install_system_deps.sh
	$(PY) -m ruff check .
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n 2 --dist loadgroup

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) scripts/bench_model.py

# The controller on the demo played in real time (PyTorch at 640 px, so that neither exit alone
# keeps up with the 30 fps clip), then all-frames throughput on a 1280x720 file with recording.
bench-runtime: setup
	$(PY) scripts/bench_runtime.py --only controller --realtime --backend torch --imgsz 640
	$(PY) scripts/bench_runtime.py --only throughput

# Five minutes in the window (Xvfb) against five minutes headless, same settings.
bench-gui: setup
	bash scripts/install_system_deps.sh
	$(PY) scripts/bench_gui.py

# Ten minutes live from the RTSP test server: memory and latency over time.
soak: setup
	bash scripts/install_system_deps.sh
	$(PY) scripts/soak_live.py

# Regenerates assets/ (bundled model, its evaluation, demo video) from scratch: about 90 minutes.
model: setup
	bash scripts/build_bundled_model.sh

# Trains and evaluates the Dy-Faster R-CNN (assets/dy-faster-rcnn-r18.safetensors): about an hour.
model-rcnn: setup
	bash scripts/build_rcnn_model.sh

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
