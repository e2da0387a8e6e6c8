"""Images in, :class:`Detections` out: letterbox, stage 1, per-sample routing, exits, post-processing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from engine.detections import Detections
from engine.model import box_kernels
from engine.model.backends import StagedBackend
from engine.model.exits import Route, plan_exits, run_exits
from engine.model.postprocess import InputPacker, Letterbox, PreparedImage, prepare_image
from engine.model.score_scale import ScoreScale


class Predictor:
    """Runs a staged backend on RGB images and returns detections in original pixels.

    Args:
        backend: any :class:`StagedBackend` (PyTorch, ONNX Runtime, OpenVINO).
        class_names: names indexed by class id.
        imgsz: longer side of the network input; sides are padded to a multiple of ``stride``.
        score_scale: maps the router's raw scores onto the readable scale that thresholds, events
            and displays use (see :mod:`engine.model.score_scale`); None keeps them raw.
        workers: how many threads the backend was opened to serve at once (the engine runs
            that many; see :class:`~engine.runtime.shared_engine.SharedEngine`).

    Several threads may call one predictor at once when its backend allows it (``workers``
    says for how many it was opened, see :func:`engine.model.loading.load_predictor`): each
    thread letterboxes into its own reused input buffer.
    """

    def __init__(self, backend: StagedBackend, class_names: Sequence[str], imgsz: int = 640,
                 conf_threshold: float = 0.25, iou_threshold: float = 0.45, max_detections: int = 300,
                 stride: int = 32, score_scale: ScoreScale | None = None, workers: int = 1) -> None:
        self.backend = backend
        self.class_names = tuple(class_names)
        self.imgsz = imgsz
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.stride = stride
        self.score_scale = score_scale
        self.workers = workers
        self._local = threading.local()  # each calling thread's InputPacker
        box_kernels.compile_now()  # now (or from Numba's cache), not in the middle of a first frame

    def prepare(self, image: np.ndarray) -> PreparedImage:
        """``image`` letterboxed to this predictor's input, for a later :meth:`predict` call.

        Capture threads call this as they deliver each frame, so the resize runs beside
        inference on another core instead of on the engine thread (one thread for every camera
        of a shared engine). Thread-safe: each call returns a new array.
        """
        return prepare_image(image, self.imgsz, self.stride)

    @property
    def prepares_ahead(self) -> bool:
        """Whether capture threads should :meth:`prepare` frames for this predictor.

        Yes unless a single model call already keeps every core busy (one worker whose threads
        take all the cores, as on a 2-core machine): there the capture thread's resize lands in
        the middle of inference and stalls its threads. Measured on the demo, 2 cores, OpenVINO:
        one worker on two threads ran 0.8x as fast with the resize on the capture thread; two
        single-threaded workers ran as fast either way (118.4 against 118.9 frames/s, mean of five
        interleaved runs) with the engine's time outside the network down from 19% to 13%.
        """
        from engine.model.onnx_backend import available_cores  # loads ONNX Runtime: only when asked

        if getattr(self.backend, "device", None) is not None and self.backend.device.type != "cpu":
            return True  # the CPU waits on the accelerator anyway
        threads = getattr(self.backend, "threads", None) or torch.get_num_threads()
        return self.workers > 1 or threads < available_cores()

    @property
    def capture_prepare(self) -> Callable[[np.ndarray], PreparedImage] | None:
        """What capture threads should run on each frame for this predictor: :meth:`prepare`
        where :attr:`prepares_ahead`, else nothing."""
        return self.prepare if self.prepares_ahead else None

    def preprocess(self, images: Sequence[np.ndarray], prepared: Sequence[PreparedImage | None] | None = None
                   ) -> tuple[np.ndarray, list[Letterbox]]:
        """The batch in the backend's ``input_layout`` (a reused buffer, valid until the next call)
        and each image's letterbox; ``prepared`` images (see :meth:`prepare`) skip the resize."""
        packer = getattr(self._local, "packer", None)
        if packer is None or packer.imgsz != self.imgsz or packer.stride != self.stride:
            packer = self._local.packer = InputPacker(self.imgsz, self.stride, self.backend.input_layout)
        return packer.pack(images, prepared)

    def predict(self, images: Sequence[np.ndarray], threshold: float | Sequence[float] = 0.5,
                route: Route | Sequence[Route] = "auto",
                prepared: Sequence[PreparedImage | None] | None = None) -> list[Detections]:
        """Detect objects in H x W x 3 uint8 RGB images.

        Images whose router score is ``>= threshold`` leave at exit 1, the others at exit 2
        (``route`` forces an exit). Either may be one value per image: frames of different
        cameras batched together each keep their own camera's routing (see
        :func:`~engine.model.exits.plan_exits`). ``prepared`` may hold, per image, its letterbox
        made ahead by :meth:`prepare` (None where there is none). Each result carries its
        per-stage timings (ms); stage timings of a batch are shared by its images.
        """
        if not images:
            return []
        t0 = time.perf_counter()
        batch, boxes = self.preprocess(images, prepared)
        t1 = time.perf_counter()
        state, scores = self.backend.stage1(batch)
        if self.score_scale is not None:
            scores = self.score_scale.apply(scores)
        t2 = time.perf_counter()
        plan = plan_exits(scores, threshold, route)
        timings = {"nms": 0.0}
        kept = run_exits(plan, lambda exit_id, index: self._run_exit(state, exit_id, index, timings))
        t4 = time.perf_counter()
        results = []
        for i, (det, box) in enumerate(zip(kept, boxes)):
            exit_id = int(plan.exits[i])
            det_timings = {
                "preprocess": (t1 - t0) * 1000, "stage1": (t2 - t1) * 1000,
                f"exit{exit_id}": timings[f"exit{exit_id}"], "nms": timings["nms"], "total": (t4 - t0) * 1000,
            }
            det = np.asarray(det)  # a tensor from PyTorch, an array from the graph runtimes
            results.append(Detections(
                boxes=box.to_original(det[:, :4]), scores=det[:, 4].astype(np.float32),
                class_ids=det[:, 5].astype(np.int64), class_names=self.class_names,
                exit=exit_id, router_score=float(scores[i]), threshold=plan.threshold(i), timings_ms=det_timings,
            ))
        return results

    def _run_exit(self, state: Any, exit_id: int, index: np.ndarray, timings: dict[str, float]
                  ) -> list[torch.Tensor] | list[np.ndarray]:
        """Exit ``exit_id`` and post-processing for the samples at ``index``; adds their ms to ``timings``."""
        start = time.perf_counter()
        run = self.backend.exit1 if exit_id == 1 else self.backend.exit2
        out = run(state, index)  # rows follow index: a batch tensor, or a list per image
        done = time.perf_counter()
        detections = self.backend.postprocess(out, self.conf_threshold, self.iou_threshold, self.max_detections)
        timings[f"exit{exit_id}"] = (done - start) * 1000
        timings["nms"] += (time.perf_counter() - done) * 1000
        return detections
