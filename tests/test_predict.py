"""DBPredictor, ``dbnet-fast detect`` (one process and torchrun), ONNX export, and
fine-tuning starts (``init``).

The real images are the model inputs in dbnet_fast/assets/real_maps.npz; the
boxes in that file are PaddleOCR's post-processing on onnxruntime's maps of
PP-OCRv4, so DBPredictor("ppocr-v4") must give them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from dbnet_fast.cli import main  # noqa: E402
from dbnet_fast.data.transforms import inference_size  # noqa: E402
from dbnet_fast.engine.checkpoint import (build_model, initialise, load_checkpoint,  # noqa: E402
                                          save_checkpoint)
from dbnet_fast.export import export_onnx, onnx_difference  # noqa: E402
from dbnet_fast.model import load_ppocr_det, ppocr_normalize  # noqa: E402
from dbnet_fast.assets import real_maps_path  # noqa: E402
from dbnet_fast.postprocess import DBPostProcessor  # noqa: E402
from dbnet_fast.predict import DBPredictor, ImageReadError, list_images  # noqa: E402

NAMES = ["skimage_page", "networkx_labels", "synth_document", "synth_scene"]


@pytest.fixture(scope="module")
def real():
    data = np.load(real_maps_path())
    return data, {n: cv2.imdecode(data[f"image_{n}"], cv2.IMREAD_COLOR) for n in NAMES}


@pytest.fixture(scope="module")
def ppocr():
    return load_ppocr_det()


@pytest.fixture(scope="module")
def image_dir(real, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for name, image in real[1].items():
        cv2.imwrite(str(folder / f"{name}.png"), image)
    return folder


def _sorted_boxes(detections) -> np.ndarray:
    boxes = detections.boxes.numpy().reshape(len(detections), -1)
    return boxes[np.lexsort(boxes.T[::-1])] if len(boxes) else boxes


def _same(a, b, box_tol=1e-3, score_tol=1e-4) -> None:
    assert len(a) == len(b)
    order_a, order_b = np.argsort(a.scores.numpy()), np.argsort(b.scores.numpy())
    np.testing.assert_allclose(_sorted_boxes(a), _sorted_boxes(b), atol=box_tol)
    np.testing.assert_allclose(a.scores.numpy()[order_a], b.scores.numpy()[order_b],
                               atol=score_tol)


# ----------------------------------------------------------------------------- resize policy


@pytest.mark.parametrize("size, limit, limit_type, expected", [
    ((480, 640), 960, "max", (480, 640)),     # small enough: kept (PaddleOCR never enlarges)
    ((1500, 1000), 960, "max", (960, 640)),
    ((17, 5000), 960, "max", (32, 960)),      # at least one multiple
    ((1, 1), 960, "max", (32, 32)),
    ((480, 640), 736, "min", (736, 992)),     # RapidOCR: short side up to 736
    ((1000, 800), 736, "min", (992, 800)),    # large enough: only rounded to multiples of 32
    ((480, 640), 736, "resize_long", (544, 736)),
    ((480, 640), 736, "short", (736, 992)),   # MhLiao/DB: short side 736, long side rounded up
    ((1000, 700), 736, "short", (1056, 736)),
    ((1, 1), 736, "short", (736, 736)),
])
def test_inference_size_policies(size, limit, limit_type, expected):
    assert inference_size(*size, limit, limit_type) == expected


def test_inference_size_rejects_bad_settings():
    with pytest.raises(ValueError, match="limit_type"):
        inference_size(10, 10, 960, "side")
    with pytest.raises(ValueError, match="limit_side_len"):
        inference_size(10, 10, 0)
    with pytest.raises(ValueError, match="empty"):
        inference_size(0, 10)


# ----------------------------------------------------------------------------- DBPredictor


def test_ppocr_predictor_gives_paddleocr_boxes(real):
    data, images = real
    predictor = DBPredictor("ppocr-v4", device="cpu", batch_size=4)
    found = predictor([images[n] for n in NAMES])
    for name, detections in zip(NAMES, found):
        expected = data[f"boxes_{name}"].reshape(-1, 8).astype(np.float32)
        got = np.round(detections.boxes.numpy()).reshape(-1, 8)
        assert len(got) == len(expected), name
        key = lambda b: b[np.lexsort(b.T[::-1])]  # noqa: E731
        np.testing.assert_array_equal(key(got), key(expected), err_msg=name)
        np.testing.assert_allclose(np.sort(detections.scores.numpy()),
                                   np.sort(data[f"scores_{name}"]), atol=2e-3)


@pytest.mark.parametrize("pad_to", [32, 128])
def test_batch_does_not_change_results(real, ppocr, pad_to):
    """An image alone and in batches with others (of its size and of other sizes)."""
    images = real[1]
    predictor = DBPredictor(ppocr, device="cpu", batch_size=3, pad_to=pad_to)
    alone = [predictor(images[n])[0] for n in NAMES]
    crowd = [images[NAMES[1]], images[NAMES[0]], images[NAMES[1]], images[NAMES[3]],
             images[NAMES[2]], images[NAMES[1]]]
    together = predictor(crowd)
    for image, found in zip(crowd, together):
        index = next(i for i, n in enumerate(NAMES) if images[n] is image)
        _same(found, alone[index])
    for name, found in zip(NAMES, alone):  # boxes inside the original image
        h, w = images[name].shape[:2]
        boxes = found.boxes.numpy()
        assert (boxes[..., 0] >= 0).all() and (boxes[..., 0] <= w).all()
        assert (boxes[..., 1] >= 0).all() and (boxes[..., 1] <= h).all()


def test_batches_group_by_padded_size(ppocr):
    predictor = DBPredictor(ppocr, device="cpu", batch_size=2, pad_to=64)
    sizes = [(64, 64), (32, 32), (64, 64), (96, 64), (64, 64), (64, 32)]
    prepared = [predictor.prepare(np.zeros((h, w, 3), np.uint8)) for h, w in sizes]
    batches = predictor.batches(prepared)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    for batch in batches:
        assert 1 <= len(batch) <= 2
        assert len({predictor.padded_size(prepared[i]) for i in batch}) == 1
    # (32, 32), (64, 32) and the three (64, 64) pad to 64 x 64: three batches of it
    assert sorted(len(b) for b in batches) == [1, 1, 2, 2]


def test_input_kinds_agree(real, ppocr, image_dir):
    image = real[1]["networkx_labels"]
    predictor = DBPredictor(ppocr, device="cpu")
    reference = predictor(image)[0]
    assert len(reference) > 0
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    variants = [
        image_dir / "networkx_labels.png",
        str(image_dir / "networkx_labels.png"),
        torch.from_numpy(rgb).permute(2, 0, 1),  # (3, H, W) RGB, as torchvision reads
        torch.from_numpy(rgb).permute(2, 0, 1)[None],  # a (1, 3, H, W) batch
        np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2),  # BGRA
    ]
    for variant in variants:
        _same(predictor(variant)[0], reference, box_tol=0, score_tol=0)
    _same(DBPredictor(ppocr, device="cpu", color="rgb")(rgb)[0], reference, 0, 0)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    _same(predictor(grey)[0], predictor(np.repeat(grey[:, :, None], 3, axis=2))[0], 0, 0)


def test_boxes_come_back_in_original_pixels(real, ppocr):
    """An image given at twice its size is shrunk to the same model input
    (limit 960): the boxes are the small image's, doubled (to resampling)."""
    image = real[1]["skimage_page"]  # 480 x 960
    big = cv2.resize(image, (image.shape[1] * 2, image.shape[0] * 2),
                     interpolation=cv2.INTER_CUBIC)
    predictor = DBPredictor(ppocr, device="cpu")
    small, large = predictor([image, big])
    assert len(small) == len(large) > 0
    centres_small = np.sort(small.boxes.numpy().mean(axis=1) * 2, axis=0)
    centres_large = np.sort(large.boxes.numpy().mean(axis=1), axis=0)
    np.testing.assert_allclose(centres_large, centres_small, atol=4)


def test_dbnet_checkpoint_predictor(tmp_path, gen):
    model = build_model("resnet18", inner_channels=64)
    path = save_checkpoint(tmp_path / "m.pt", model, config={"thresh": 0.2, "box_thresh": 0.45,
                                                             "unclip_ratio": 1.8}, rng=False)
    predictor = DBPredictor(path, device="cpu", postprocess={"output": "poly"})
    post = predictor.postprocessor
    assert (post.thresh, post.box_thresh, post.unclip_ratio, post.output) == (0.2, 0.45, 1.8,
                                                                              "poly")
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
              for h, w in [(50, 70), (64, 64), (33, 100)]]
    found = predictor(images)
    assert len(found) == 3
    for detections in found:
        assert isinstance(detections.boxes, list) and detections.scores.dtype == torch.float32
    explicit = DBPostProcessor(box_thresh=0.9)
    assert DBPredictor(model, device="cpu", postprocess=explicit).postprocessor is explicit


def test_predictor_rejects_bad_arguments(ppocr, tmp_path):
    with pytest.raises(TypeError, match="model_or_checkpoint"):
        DBPredictor(3, device="cpu")
    with pytest.raises(FileNotFoundError):
        DBPredictor(tmp_path / "missing.pt", device="cpu")
    for kwargs, match in [({"batch_size": 0}, "batch_size"), ({"pad_to": 48}, "pad_to"),
                          ({"color": "hsv"}, "color"), ({"limit_type": "long"}, "limit_type"),
                          ({"limit_side_len": -5}, "limit_side_len"),
                          ({"postprocess": {"thresold": 0.3}}, "thresold"),
                          ({"postprocess": {"output": "mask"}}, "output")]:
        with pytest.raises(ValueError, match=match):
            DBPredictor(ppocr, device="cpu", **kwargs)
    predictor = DBPredictor(ppocr, device="cpu")
    for image, error, match in [
        (np.zeros((10, 10, 3), np.float32), TypeError, "uint8"),
        (np.zeros((0, 10, 3), np.uint8), ValueError, "empty"),
        (np.zeros((10, 10, 5), np.uint8), ValueError, "shape"),
        ([[1, 2]], TypeError, "path, a NumPy array or a tensor"),
        (tmp_path / "none.png", ImageReadError, "no such file"),
    ]:
        with pytest.raises(error, match=match):
            predictor(image)
    (tmp_path / "bad.jpg").write_bytes(b"\x00" * 10)
    with pytest.raises(ImageReadError, match="bad.jpg"):
        predictor(tmp_path / "bad.jpg")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images([tmp_path / "nowhere"])


def test_empty_and_blank_images_give_no_boxes(ppocr):
    predictor = DBPredictor(ppocr, device="cpu")
    found = predictor([np.zeros((1, 1, 3), np.uint8), np.full((40, 300, 3), 255, np.uint8)])
    assert [len(d) for d in found] == [0, 0]
    assert found[0].boxes.shape == (0, 4, 2)


# ----------------------------------------------------------------------------- detect


def test_detect_command_writes_json_and_pictures(image_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    for name in ("networkx_labels", "skimage_page"):
        (inputs / f"{name}.png").write_bytes((image_dir / f"{name}.png").read_bytes())
    (other / "networkx_labels.png").write_bytes((image_dir / "networkx_labels.png").read_bytes())
    (inputs / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    code = main(["detect", str(inputs), str(other / "networkx_labels.png"), "--model", "ppocr-v4",
                 "--out", str(out), "--batch-size", "2", "--device", "cpu", "--workers", "1",
                 "--no-progress"])
    assert code == 1  # one unreadable image
    record = json.loads((out / "networkx_labels.json").read_text())
    twin = json.loads((out / "networkx_labels-1.json").read_text())
    assert (record["height"], record["width"]) == (704, 960) and record["model"] == "ppocr-v4"
    assert record["count"] == len(record["detections"]) == 5
    assert record["detections"] == twin["detections"]
    for item in record["detections"]:
        assert np.asarray(item["points"]).shape == (4, 2) and 0.6 <= item["score"] <= 1
    for name in ("networkx_labels", "networkx_labels-1", "skimage_page"):
        picture = cv2.imread(str(out / f"{name}.png"))
        assert picture is not None and picture.shape[:2] == (record["height"], record["width"]) \
            or name == "skimage_page"
    summary = json.loads((out / "summary.rank0.json").read_text())
    assert summary["done"] == 3 and summary["failed"] == 1
    assert "broken.png" in summary["errors"][0]
    assert not (out / "broken.json").exists()
    # polygons, no pictures, all readable: exit 0
    code = main(["detect", str(image_dir / "synth_scene.png"), "--model", "ppocr-v4", "--out",
                 str(tmp_path / "poly"), "--output", "poly", "--no-pictures", "--workers", "0",
                 "--device", "cpu", "--no-progress"])
    assert code == 0
    record = json.loads((tmp_path / "poly" / "synth_scene.json").read_text())
    assert record["output"] == "poly" and record["count"] >= 8
    assert not (tmp_path / "poly" / "synth_scene.png").exists()


def test_detect_command_reports_bad_arguments(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "nowhere"), "--model", "ppocr-v4", "--out",
                 str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["detect", str(tmp_path), "--model", "ppocr-v4", "--out", str(tmp_path)]) == 2
    assert "no images" in capsys.readouterr().err


def test_reading_workers_default_leaves_the_models_cores_free(monkeypatch):
    from dbnet_fast.engine.detect import reading_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    threads = torch.get_num_threads()
    try:
        for model_threads, readers in ((8, 0), (7, 1), (6, 2), (1, 2)):
            torch.set_num_threads(model_threads)
            assert reading_workers(torch.device("cpu")) == readers, model_threads
    finally:
        torch.set_num_threads(threads)
    assert reading_workers(torch.device("cuda", 0)) == 4  # the host only reads
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert reading_workers(torch.device("cuda", 0)) == 0
    assert reading_workers(torch.device("cpu")) == 0


@pytest.mark.slow
def test_detect_under_torchrun_shards_images(image_dir, tmp_path):
    """Two CPU processes (gloo): every image done exactly once, each rank its own."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = []
    for k in range(7):
        name = f"img{k}"
        source = image_dir / f"{NAMES[k % len(NAMES)]}.png"
        (inputs / f"{name}.png").write_bytes(source.read_bytes())
        names.append(name)
    (inputs / "zz_broken.png").write_bytes(b"???")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(_free_port()), "-m", "dbnet_fast.cli", "detect", str(inputs),
         "--model", "ppocr-v4", "--out", str(out), "--device", "cpu", "--workers", "0",
         "--no-progress", "--no-pictures", "--batch-size", "2"],
        capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode != 0, run.stdout + run.stderr  # the broken image fails the run
    assert "7 of 8 images done on 2 processes" in run.stdout, run.stdout + run.stderr
    summaries = [json.loads((out / f"summary.rank{r}.json").read_text()) for r in range(2)]
    assert sum(s["done"] for s in summaries) == 7
    assert sum(s["failed"] for s in summaries) == 1
    assert {s["world_size"] for s in summaries} == {2}
    written = sorted(p.stem for p in out.glob("img*.json"))
    assert written == names
    single = DBPredictor("ppocr-v4", device="cpu")
    for k, name in enumerate(names):
        record = json.loads((out / f"{name}.json").read_text())
        expected = single(inputs / f"{name}.png")[0]
        assert record["count"] == len(expected)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- export


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_large", "asf", "ppocr-v4"])
def test_export_onnx_matches_pytorch(arch, tmp_path, ppocr):
    if arch == "ppocr-v4":
        model = ppocr
    elif arch == "asf":
        model = build_model("resnet18", neck="asf", inner_channels=64).eval()
    else:
        model = build_model(arch, inner_channels=64).eval()
    path = export_onnx(model, tmp_path / "m.onnx")
    for shape in [(1, 3, 32, 32), (3, 3, 160, 96), (2, 3, 96, 224)]:  # dynamic N, H, W
        assert onnx_difference(model, path, shape, seed=shape[2]) <= 1e-4
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["input_norm"] == model.input_norm and meta["stride"] == "32"
    assert model.training is False


def test_export_command_and_errors(tmp_path, capsys):
    model = build_model("resnet18", inner_channels=64)
    checkpoint = save_checkpoint(tmp_path / "m.pt", model, rng=False)
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx",
                 str(tmp_path / "o" / "m.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "o" / "m.onnx"))
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(["prob"], {"images": x})[0] - expected).max() <= 1e-4
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--onnx",
                 str(tmp_path / "x.onnx")]) == 2
    assert "none.pt" in capsys.readouterr().err
    with pytest.raises(ValueError, match="deformable"):
        export_onnx(build_model("resnet18", dcn=True, inner_channels=64), tmp_path / "d.onnx")
    with pytest.raises(ValueError, match="sample_size"):
        export_onnx(model, tmp_path / "d.onnx", sample_size=(50, 64))


# ----------------------------------------------------------------------------- init / input_norm


def test_ppocr_imagenet_input_norm_converts(real, ppocr):
    from dbnet_fast.data import normalize

    image = real[1]["synth_scene"]
    converted = load_ppocr_det(input_norm="imagenet")
    with torch.no_grad():
        a = ppocr(ppocr_normalize(image))
        b = converted(normalize(image)[None])
    assert (a - b).abs().max() <= 1e-4  # float32 rounding of the conversion


def test_init_from_ppocr_and_from_checkpoint(real, ppocr, tmp_path):
    from dbnet_fast.data import normalize

    image = normalize(real[1]["networkx_labels"])[None]
    model = build_model("ppocr-v4")
    initialise(model, "ppocr-v4")
    with torch.no_grad():
        assert (model.eval()(image) - ppocr(ppocr_normalize(real[1]["networkx_labels"]))
                ).abs().max() <= 1e-4
    path = save_checkpoint(tmp_path / "p.pt", model, rng=False)
    again = build_model(**load_checkpoint(path)["model_config"])
    initialise(again, str(path))
    for name, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name
    with pytest.raises(ValueError, match="needs arch"):
        initialise(build_model("resnet18", inner_channels=64), "ppocr-v4")
    with pytest.raises(ValueError, match="not the"):
        initialise(build_model("resnet18", inner_channels=64), str(path))
    with pytest.raises(ValueError, match="own neck \\(rsefpn\\)"):
        build_model("ppocr-v4", neck="asf")
    # each PaddleOCR architecture records the neck it has, and a checkpoint's config rebuilds it
    v6 = build_model("ppocr-v6-small")
    assert v6.config["neck"] == "replkfpn"
    assert build_model(**v6.config).config == v6.config
    with pytest.raises(ValueError, match="own neck \\(replkfpn\\)"):
        build_model("ppocr-v6-small", neck="rsefpn")


# ----------------------------------------------------------------------------- edge cases


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (and holds no pixels)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_output_names_never_collide():
    from dbnet_fast.engine.detect import output_names

    paths = [Path(p) for p in ("x/a.png", "y/a.jpg", "z/a-1.png", "w/A.png", "v/summary.rank0.png",
                               "u/b.png")]
    names = output_names(paths)
    assert len({n.casefold() for n in names}) == len(names)
    assert names[0] == "a" and names[-1] == "b"
    assert names[4] == "summary.rank0-1"


def test_detect_refuses_to_overwrite_inputs_and_survives_bad_files(image_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "page.png").write_bytes((image_dir / "networkx_labels.png").read_bytes())
    assert main(["detect", str(folder), "--model", "ppocr-v4", "--out", str(folder),
                 "--device", "cpu", "--no-progress"]) == 2
    assert "would replace an input" in capsys.readouterr().err
    assert cv2.imread(str(folder / "page.png")) is not None and not (folder / "page.json").exists()
    (folder / "huge.png").write_bytes(_png_header_only(60000, 60000))  # more pixels than allowed
    out = tmp_path / "out"
    assert main(["detect", str(folder), str(folder / "page.png"), "--model", "ppocr-v4", "--out",
                 str(out), "--device", "cpu", "--workers", "1", "--no-progress"]) == 1
    summary = json.loads((out / "summary.rank0.json").read_text())
    assert summary["done"] == 1 and summary["failed"] == 1  # page.png listed twice: done once
    assert "huge.png" in summary["errors"][0]
    for bad in (["--batch-size", "0"], ["--workers", "-1"], ["--pad-to", "16"]):
        with pytest.raises(SystemExit):
            main(["detect", str(folder), "--model", "ppocr-v4", *bad])
        assert bad[0] in capsys.readouterr().err


def test_predictor_edge_inputs(ppocr):
    predictor = DBPredictor(ppocr, device="cpu")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        predictor(torch.zeros(200, 3, 3, dtype=torch.uint8))  # HWC tensors are refused
    with pytest.raises(TypeError, match="list or tuple"):
        predictor(3)
    assert predictor([]) == []
    ppocr.train()
    predictor(np.zeros((40, 40, 3), np.uint8))
    assert ppocr.training  # the caller's mode is restored
    ppocr.eval()
    with pytest.raises(ValueError, match="thresh"):
        DBPredictor(ppocr, device="cpu", postprocess={"thresh": float("nan")})


def test_inference_size_is_capped():
    from dbnet_fast.data.transforms import MAX_SIDE_LIMIT

    for limit_type in ("min", "short", "resize_long"):
        h, w = inference_size(1, 100000, 736, limit_type)
        assert max(h, w) <= MAX_SIDE_LIMIT and min(h, w) >= 32
    assert inference_size(100, 100, 5000, "resize_long") == (4992, 4992)  # an explicit limit wins


def test_empty_batches_and_bad_postprocess_settings():
    assert DBPostProcessor()(torch.zeros(0, 1, 32, 32)) == []
    assert DBPostProcessor()(torch.zeros(0, 1, 32, 32), sizes=[]) == []
    for kwargs in ({"thresh": float("nan")}, {"unclip_ratio": 0}, {"max_candidates": -1},
                   {"box_thresh": "0.5"}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            DBPostProcessor(**kwargs)


def test_evaluate_refuses_ppocr_normalised_models(ppocr):
    from dbnet_fast.engine import evaluate

    with pytest.raises(ValueError, match="input_norm"):
        evaluate(ppocr, [None])


def test_trim_memory_choice_same_boxes_and_trims_only_when_asked(real, ppocr, monkeypatch):
    import dbnet_fast.predict as predict

    with pytest.raises(TypeError, match="trim_memory"):
        DBPredictor(ppocr, device="cpu", trim_memory="no")
    calls = []
    monkeypatch.setattr(predict, "release_freed_memory", lambda: calls.append(1))
    image = real[1][NAMES[0]]
    trimmed = DBPredictor(ppocr, device="cpu")([image, image])
    assert len(calls) == 1  # once per call, not per image
    kept = DBPredictor(ppocr, device="cpu", trim_memory=False)([image, image])
    assert len(calls) == 1
    for a, b in zip(trimmed, kept):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
