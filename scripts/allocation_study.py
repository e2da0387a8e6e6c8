"""Several cameras sharing one exit-2 budget: per-camera equal shares against one pooled threshold.

Simulated cameras run every frame through both exits once (cached under ``runs/allocation``);
any allocation is then a per-frame choice between the two stored prediction sets, so the
comparison is exact and costs no further inference. Two fleets:

- ``generated``: a calm camera (nominal difficulty 0.0-0.3) and a busy one (0.7-1.0), stills
  from the generator at seeds never used for training or evaluation, JPEG-compressed as the
  training images are;
- ``demo``: the calmest and the busiest quarter of the demo clip (by the clip's nominal
  difficulty), each quarter a camera;
- ``clips``: the four cameras that ``scripts/bench_monitor.py allocation`` runs live (two calm
  clips, two busy), so the live benchmark's outcome can be foreseen and explained here.

At each exit-2 share of all frames of a fleet, the rankings compared are: ``per-camera`` (each
camera sends the same share, its own lowest router scores: the baseline), ``global`` (the
monitor's: one threshold over the pooled scores of the whole fleet, no camera above twice the
share), ``uncapped`` (the same without the cap), the same for every extra router given
with ``--router`` (same detectors, another router), ``floorF`` (pooled, but every camera is first
given ``F`` of the share among its own frames: a guard against starving a camera), ``disagreement``
(each camera's share in proportion to how much exit 2 changes its detections, measured on the frames
its equal share sends to exit 2, as a running system could by also running head 1 on those frames;
within a camera, its own ranking), ``oracle-shares`` (each camera's share as the oracle's pooled
allocation sets it, frames within the camera by the ranking: the most any split of the budget
between cameras can add to that ranking), and ``oracle``
(by each frame's true per-image AP gain of exit 2: an upper bound, under the same policies). The
number reported is the mean over cameras of each camera's COCO mAP@0.5:0.95 (pycocotools), with
each camera's exit-2 share. Frames of equal score are ordered at random, not by camera.

Example::

    python scripts/allocation_study.py --router runs/router-candidate.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.data.synthetic import generate_image  # noqa: E402
from engine.model.checkpoint import load_model  # noqa: E402
from engine.model.postprocess import letterbox, to_tensor  # noqa: E402
from engine.runtime.allocation import GLOBAL_CAP, capped_pool_threshold  # noqa: E402
from engine.runtime.score_window import ScoreWindow  # noqa: E402
from engine.train.evaluate import coco_map, routed  # noqa: E402
from engine.train.image_ap import image_ap  # noqa: E402

CAMERA_SEED = 5_550_001  # never used by the training set (1), held-out set (20261123) or demo (7)
JPEG_QUALITY = 95  # the generated datasets' quality
CLIP_SIZE = (640, 360)  # the bench fleet's clips, as scripts/bench_monitor.py makes them by default


@dataclass
class Camera:
    """One camera's frames through both exits (boxes in the frame's own pixels)."""

    name: str
    first: list[np.ndarray]  # per frame [K, 6] x1, y1, x2, y2, score, class
    second: list[np.ndarray]
    truth: list[np.ndarray]  # per frame [M, 5] class, x1, y1, x2, y2
    pooled: np.ndarray  # [N, C] router input: backbone-1 stages, globally average-pooled
    scores: np.ndarray  # [N] the model's own router easiness scores
    difficulty: np.ndarray  # [N] nominal difficulty of each frame
    ap_first: np.ndarray  # [N] per-image AP of each exit (NaN without ground truth)
    ap_second: np.ndarray

    @property
    def gain(self) -> np.ndarray:
        """What exit 2 adds to each frame's own AP (0 for frames without ground truth)."""
        return np.nan_to_num(self.ap_second - self.ap_first, nan=0.0)


def generated_frames(lo: float, hi: float, count: int, stream: int, size: int
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """Stills of nominal difficulty uniform in ``[lo, hi]``, JPEG round-tripped."""
    seeds = np.random.SeedSequence([CAMERA_SEED, stream]).spawn(count)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        difficulty = float(rng.uniform(lo, hi))
        picture = generate_image(difficulty, rng, size=(size, size))
        _, data = cv2.imencode(".jpg", picture.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]
        truth = np.concatenate([picture.class_ids[:, None].astype(np.float32), picture.boxes], 1)
        yield np.ascontiguousarray(image), truth, difficulty


def clip_frames(video: Path) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Every frame of a generated clip with its ground truth and nominal difficulty."""
    import av

    meta = json.loads(video.with_suffix(".json").read_text())
    truth: dict[int, list[list[float]]] = {img["id"]: [] for img in meta["images"]}
    for ann in meta["annotations"]:
        x, y, w, h = ann["bbox"]
        truth[ann["image_id"]].append([ann["category_id"], x, y, x + w, y + h])
    images = meta["images"]
    with av.open(str(video)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return [(image, np.asarray(truth[info["id"]], np.float32).reshape(-1, 5),
             float(info["difficulty_factors"]["difficulty"])) for image, info in zip(decoded, images)]


def demo_quarters(video: Path) -> dict[str, list[tuple[np.ndarray, np.ndarray, float]]]:
    """The calmest and the busiest quarter of a generated clip, by its nominal difficulty."""
    frames = clip_frames(video)
    order = np.argsort([d for _, _, d in frames], kind="stable")
    quarter = len(frames) // 4
    return {"demo-calm": [frames[i] for i in sorted(order[:quarter])],
            "demo-busy": [frames[i] for i in sorted(order[-quarter:])]}


def bench_clips(frames: int, size: tuple[int, int]) -> dict[str, list[tuple[np.ndarray, np.ndarray, float]]]:
    """The four cameras of ``scripts/bench_monitor.py allocation`` (two calm clips, two busy)."""
    from scripts.bench_monitor import FLEET, clip

    return {name: clip_frames(clip(name, difficulty, seed, frames, size)) for name, difficulty, seed in FLEET}


@torch.no_grad()
def run_camera(model, name: str, frames, imgsz: int, batch: int = 8) -> Camera:
    """Both exits, router inputs and scores for every frame."""
    first, second, truth, pooled, scores, difficulty = [], [], [], [], [], []
    frames = list(frames)
    for start in range(0, len(frames), batch):
        chunk = frames[start:start + batch]
        boxed = [letterbox(image, imgsz, model.stride) for image, _, _ in chunk]
        s1 = model.stage1(to_tensor([b[0] for b in boxed]))
        for out, predictions in ((first, model.exit1(s1)), (second, model.exit2(s1))):
            for det, (_, box) in zip(model.postprocess(predictions, 0.001, 0.6, 300), boxed):
                det = det.numpy().copy()
                det[:, :4] = box.to_original(det[:, :4])
                out.append(det)
        pooled.append(torch.cat([s1.features[n].mean(dim=(2, 3)) for n in model.router.input_names], 1).numpy())
        scores += s1.scores.tolist()
        truth += [rows for _, rows, _ in chunk]
        difficulty += [d for _, _, d in chunk]
    ap_first = np.array([image_ap(p, t) for p, t in zip(first, truth)])
    ap_second = np.array([image_ap(p, t) for p, t in zip(second, truth)])
    return Camera(name, first, second, truth, np.concatenate(pooled), np.asarray(scores, np.float32),
                  np.asarray(difficulty), ap_first, ap_second)


def detectors_key(model) -> str:
    """Hash of every weight outside the router: cached detections stay valid for any router."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        if not name.startswith("router."):
            digest.update(name.encode())
            digest.update(value.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:12]


def fleets(model, args) -> dict[str, list[Camera]]:
    """Both fleets, from the cache when the detectors and settings match."""
    key = f"{detectors_key(model)}-{args.frames}-{args.clip_frames}-{args.imgsz}"
    if args.clip_size != CLIP_SIZE:
        key += f"-{args.clip_size[0]}x{args.clip_size[1]}"
    cache = Path(args.cache) / f"cameras-{key}.pkl"
    if cache.exists():  # plain dicts: the cache loads whichever module imports this one
        return {fleet: [Camera(**c) for c in cams] for fleet, cams in pickle.loads(cache.read_bytes()).items()}
    generated = [run_camera(model, name, generated_frames(lo, hi, args.frames, stream, args.imgsz), args.imgsz)
                 for name, lo, hi, stream in (("gen-calm", 0.0, 0.3, 0), ("gen-busy", 0.7, 1.0, 1))]
    demo = [run_camera(model, name, frames, args.imgsz) for name, frames in demo_quarters(Path(args.video)).items()]
    clips = [run_camera(model, name, frames, args.imgsz)
             for name, frames in bench_clips(args.clip_frames, args.clip_size).items()]
    out = {"generated": generated, "demo": demo, "clips": clips}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps({fleet: [vars(c) for c in cams] for fleet, cams in out.items()}))
    return out


def lowest(values: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Mask of the ``count`` lowest values; ties broken at random, not by camera order."""
    mask = np.zeros(len(values), bool)
    mask[np.lexsort((rng.random(len(values)), values))[:count]] = True
    return mask


def allocate(cameras: list[Camera], rank: list[np.ndarray], share: float, pooled: bool,
             rng: np.random.Generator, floor: float = 0.0, cap: float | None = None) -> list[np.ndarray]:
    """Exit-2 masks per camera: the lowest ``rank`` values go to exit 2, per camera or fleet-wide.

    With ``pooled`` and a ``floor`` in (0, 1], every camera first gets ``floor * share`` of its own
    frames (its own lowest values) and the rest of the budget goes to the lowest values fleet-wide.
    With a ``cap``, no camera gets more than ``cap * share`` of its frames (the monitor's ``global``).
    """
    if not pooled:
        return [lowest(r, round(share * len(r)), rng) for r in rank]
    if cap is not None:
        return allocate_capped(rank, share, cap)
    masks = [lowest(r, round(floor * share * len(r)), rng) for r in rank]
    values = np.concatenate([np.where(m, np.inf, r) for m, r in zip(masks, rank)])
    left = round(share * len(values)) - sum(int(m.sum()) for m in masks)
    extra = np.split(lowest(values, max(left, 0), rng), np.cumsum([len(r) for r in rank])[:-1])
    return [m | e for m, e in zip(masks, extra)]


def allocate_capped(rank: list[np.ndarray], share: float, cap: float) -> list[np.ndarray]:
    """The monitor's ``global`` rule (:func:`~engine.runtime.allocation.capped_pool_threshold`) over
    whole clips: one pooled threshold, each camera taking at most ``cap * share`` of its frames."""
    windows = []
    for values in rank:
        window = ScoreWindow(len(values))
        for value in values:
            window.append(value)
        windows.append(window)
    pooled = sorted(v for w in windows for v in w.sorted)
    threshold = capped_pool_threshold(windows, pooled, share, cap * share)
    return [values < min(threshold, w.quantile(cap * share)) for values, w in zip(rank, windows)]


def exit_disagreement(first: np.ndarray, second: np.ndarray, conf: float = 0.25, iou: float = 0.5) -> float:
    """How much exit 2 changes one frame's detections (score >= ``conf``): 1 - 2 * matched / (n1 + n2),
    boxes matched greedily by IoU >= ``iou`` within a class; 0 when both exits find the same (or nothing)."""
    a, b = first[first[:, 4] >= conf], second[second[:, 4] >= conf]
    if len(a) + len(b) == 0:
        return 0.0
    if len(a) == 0 or len(b) == 0:
        return 1.0
    overlap = box_iou(torch.from_numpy(a[:, :4]), torch.from_numpy(b[:, :4])).numpy()
    overlap[a[:, None, 5] != b[None, :, 5]] = 0.0
    matched = 0
    while overlap.size and overlap.max() >= iou:
        i, j = np.unravel_index(overlap.argmax(), overlap.shape)
        overlap[i, :], overlap[:, j] = 0.0, 0.0
        matched += 1
    return 1.0 - 2.0 * matched / (len(a) + len(b))


def weighted_shares(weights: list[float], sizes: list[int], share: float) -> np.ndarray:
    """Per-camera exit-2 shares in proportion to ``weights``, each at most 1, spending ``share`` of all frames."""
    w, n = np.maximum(np.asarray(weights, float), 1e-3), np.asarray(sizes, float)
    shares, full = np.zeros(len(w)), np.zeros(len(w), bool)
    for _ in range(len(w)):  # cameras over 1 are capped and the rest shared out again
        left = share * n.sum() - (n[full]).sum()
        shares[~full] = left * w[~full] / (w[~full] * n[~full]).sum()
        over = ~full & (shares > 1.0)
        if not over.any():
            break
        shares[over], full = 1.0, full | over
    return np.clip(shares, 0.0, 1.0)


def allocate_by_disagreement(cameras: list[Camera], rank: list[np.ndarray], share: float,
                             rng: np.random.Generator) -> list[np.ndarray]:
    """Shares weighted by each camera's exit disagreement on the frames its equal share sends to exit 2."""
    equal = allocate(cameras, rank, share, False, np.random.default_rng(rng.integers(1 << 31)))
    weights = [float(np.mean([exit_disagreement(c.first[i], c.second[i]) for i in np.flatnonzero(m)] or [0.0]))
               for c, m in zip(cameras, equal)]
    shares = weighted_shares(weights, [len(r) for r in rank], share)
    return [lowest(r, round(s * len(r)), rng) for r, s in zip(rank, shares)]


def allocate_by_oracle_shares(cameras: list[Camera], rank: list[np.ndarray], share: float,
                              rng: np.random.Generator) -> list[np.ndarray]:
    """Each camera's share as the oracle's pooled allocation sets it (by true per-frame gain), frames
    within the camera by ``rank``: what the best split of the budget *between* cameras can add to a
    ranking, however that split is found."""
    pooled = allocate(cameras, [-c.gain for c in cameras], share, True, np.random.default_rng(rng.integers(1 << 31)))
    return [lowest(r, int(m.sum()), rng) for r, m in zip(rank, pooled)]


def measure(cameras: list[Camera], masks: list[np.ndarray], num_classes: int) -> dict:
    maps = [coco_map(routed(c, m), c.truth, num_classes)["map"] for c, m in zip(cameras, masks)]
    return {"map": float(np.mean(maps)), "per_camera": [round(100 * m, 2) for m in maps],
            "shares": [round(float(m.mean()), 3) for m in masks]}


def router_logits(path: str, cameras: list[Camera]) -> list[np.ndarray]:
    """Another router's easiness scores on the cached router inputs (its detectors must be these)."""
    other = load_model(path).model.eval()
    with torch.no_grad():
        return [other.router.logits_from_pooled(torch.from_numpy(c.pooled)[:, :, None, None]).sigmoid().numpy()
                for c in cameras]


def study(cameras: list[Camera], rankings: dict[str, list[np.ndarray]], shares: list[float],
          num_classes: int, seed: int, floors: tuple[float, ...] = ()) -> list[dict]:
    rows = []
    modes = [("per-camera", False, 0.0, None), ("global", True, 0.0, GLOBAL_CAP), ("uncapped", True, 0.0, None)]
    modes += [(f"floor{f:g}", True, f, None) for f in floors]
    for name, rank in rankings.items():
        for mode, pooled, floor, cap in modes:
            for share in shares:
                masks = allocate(cameras, rank, share, pooled, np.random.default_rng(seed), floor, cap)
                rows.append({"ranking": name, "mode": mode, "share": share,
                             **measure(cameras, masks, num_classes)})
        for mode, policy in (("disagreement", allocate_by_disagreement), ("oracle-shares", allocate_by_oracle_shares)):
            for share in shares:
                masks = policy(cameras, rank, share, np.random.default_rng(seed))
                rows.append({"ranking": name, "mode": mode, "share": share, **measure(cameras, masks, num_classes)})
    return rows


def describe(cameras: list[Camera], num_classes: int) -> dict:
    out = {}
    for c in cameras:
        m1 = coco_map(c.first, c.truth, num_classes)["map"]
        m2 = coco_map(c.second, c.truth, num_classes)["map"]
        out[c.name] = {"frames": len(c.truth), "difficulty": round(float(c.difficulty.mean()), 3),
                       "objects": round(float(np.mean([len(t) for t in c.truth])), 2),
                       "exit1": round(100 * m1, 2), "exit2": round(100 * m2, 2),
                       "gain": round(100 * (m2 - m1), 2), "mean_image_gain": round(100 * float(c.gain.mean()), 2),
                       "score_median": float(np.median(c.scores)),
                       "scores_below_1e-5": round(float((c.scores < 1e-5).mean()), 3)}
    return out


def print_table(fleet: str, rows: list[dict], cameras: list[Camera]) -> None:
    names = " / ".join(c.name for c in cameras)
    print(f"\n{fleet}: mean per-camera mAP (per camera: mAP, exit-2 share) [{names}]")
    baseline = {r["share"]: r["map"] for r in rows if r["ranking"] == "router" and r["mode"] == "per-camera"}
    for r in rows:
        cams = ", ".join(f"{m:.2f}@{s:.2f}" for m, s in zip(r["per_camera"], r["shares"]))
        delta = 100 * (r["map"] - baseline[r["share"]])
        print(f"  {r['ranking']:>22} {r['mode']:>12} share {r['share']:.2f}: {100 * r['map']:6.2f}"
              f" ({delta:+5.2f} vs per-camera)  [{cams}]")


def _size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(REPO / "assets/dy-yolov7-tiny.safetensors"))
    parser.add_argument("--router", action="append", default=[],
                        help="another model file with the same detectors: its router is compared too")
    parser.add_argument("--video", default=str(REPO / "assets/demo.mp4"))
    parser.add_argument("--frames", type=int, default=300, help="frames per generated camera")
    parser.add_argument("--clip-frames", type=int, default=300, help="frames per clip of the bench's fleet")
    parser.add_argument("--clip-size", type=_size, default=CLIP_SIZE, help="WxH of the bench fleet's clips")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--shares", default="0.25,0.5")
    parser.add_argument("--cache", default=str(REPO / "runs/allocation"))
    parser.add_argument("--seed", type=int, default=0, help="tie-breaking seed")
    parser.add_argument("--floors", default="0.5",
                        help="comma-separated: pooled allocation where each camera is first given this part "
                             "of the share (0 = plain global; '' for none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write every row here as well")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.weights)
    model = loaded.model.eval()
    num_classes = loaded.spec.num_classes
    shares = [float(s) for s in args.shares.split(",")]
    result = {}
    for fleet, cameras in fleets(model, args).items():
        rankings = {"router": [c.scores for c in cameras]}
        for path in args.router:
            rankings[Path(path).stem] = router_logits(path, cameras)
        rankings["oracle"] = [-c.gain for c in cameras]
        floors = tuple(float(f) for f in args.floors.split(",") if f)
        rows = study(cameras, rankings, shares, num_classes, args.seed, floors)
        result[fleet] = {"cameras": describe(cameras, num_classes), "rows": rows}
        print(f"\n{fleet} cameras: {json.dumps(result[fleet]['cameras'])}")
        print_table(fleet, rows, cameras)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
