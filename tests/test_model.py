"""DBNet / DBNet++ model and DBLoss: shapes, dtypes, deformable convs, ASF,
train / eval outputs, autocast, argument errors, the loss against the float64
reference, one optimisation step, and offline-safe pretrained weights."""

from __future__ import annotations

import io
import os
import socket
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from dbnet_fast.model import (
    FPN,
    AdaptiveScaleFusion,
    DBHead,
    DBLoss,
    DBNet,
    ModulatedDeformConv2d,
    build_backbone,
)
from dbnet_fast.model import weights as weights_module
from dbnet_fast.ops import db_binarize
from dbnet_fast.reference import db_loss_reference

KEYS = {"prob_logits", "thresh_logits", "prob", "thresh", "binary"}
CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
    "mobilenet_v3_large": (24, 40, 112, 960),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def images(b=2, h=64, w=64, seed=1):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def random_targets(shape, seed=2):
    """Label maps as the data pipeline makes them: binary shrink map and masks,
    threshold map in [0.3, 0.7]."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda: torch.rand(shape, generator=g)  # noqa: E731
    return {
        "shrink_map": (rand() < 0.2).float(),
        "shrink_mask": (rand() > 0.1).float(),
        "thresh_map": rand() * 0.4 + 0.3,
        "thresh_mask": (rand() < 0.5).float(),
    }


def bn_eval(model: nn.Module) -> nn.Module:
    """Training mode, but BatchNorm with running statistics (deterministic per sample)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return model


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("backbone", list(CHANNELS))
def test_backbone_levels(backbone):
    net = build_backbone(backbone)
    assert net.out_channels == CHANNELS[backbone]
    with torch.no_grad():
        levels = net.eval()(images(1, 64, 96))
    assert [tuple(f.shape) for f in levels] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(CHANNELS[backbone], (4, 8, 16, 32))
    ]


@pytest.mark.parametrize("neck", ["fpn", "asf"])
@pytest.mark.parametrize("backbone", list(CHANNELS))
def test_train_and_eval_outputs(backbone, neck):
    model = DBNet(backbone, neck=neck)
    batch = 1 if backbone == "resnet50" else 2
    out = model.train()(images(batch, 64, 96))
    assert isinstance(out, dict) and set(out) == KEYS
    for name, value in out.items():
        assert value.shape == (batch, 1, 64, 96), name
        assert value.dtype == torch.float32, name
    torch.testing.assert_close(out["prob"], torch.sigmoid(out["prob_logits"]))
    torch.testing.assert_close(out["thresh"], torch.sigmoid(out["thresh_logits"]))
    want = torch.sigmoid(model.k * (out["prob"].double() - out["thresh"].double()))
    torch.testing.assert_close(out["binary"].double(), want, atol=1e-6, rtol=0)
    assert out["binary"].grad_fn is not None

    with torch.no_grad():
        prob = model.eval()(images(1, 32, 64))
    assert isinstance(prob, torch.Tensor) and prob.shape == (1, 1, 32, 64)
    assert prob.dtype == torch.float32
    assert 0 <= prob.min() and prob.max() <= 1


def test_eval_output_is_the_training_probability_map():
    model = DBNet("resnet18", neck="asf")
    x = images(2)
    with torch.no_grad():
        train_prob = bn_eval(model)(x)["prob"]
        eval_prob = model.eval()(x)
    torch.testing.assert_close(eval_prob, train_prob, rtol=0, atol=0)


def test_eval_mode_does_not_run_the_threshold_head():
    model = DBNet("mobilenet_v3_large").eval()
    calls = []
    model.thresh_head.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        model(images(1))
    assert calls == []


def test_fpn_structure():
    fpn = FPN((8, 16, 32, 64), inner_channels=32)
    feats = [torch.randn(2, c, 32 // s, 48 // s) for c, s in zip((8, 16, 32, 64), (1, 2, 4, 8))]
    out = fpn(feats)
    assert out.shape == (2, 32, 32, 48)
    # Concatenated coarsest first: the stride-4 level is the last quarter.
    with torch.no_grad():
        fpn.smooth[0].weight.zero_()
    out = fpn(feats)
    assert out[:, 24:].abs().max() == 0 and out[:, :24].abs().max() > 0
    # Top-down: the stride-32 features reach every level (upsample-add).
    feats2 = [f.clone() for f in feats]
    feats2[3] = feats2[3] + 1.0
    changed = (fpn(feats2) - out).abs().amax(dim=(0, 2, 3))
    assert (changed[:24].view(3, 8).amax(dim=1) > 0).all()


def test_asf_weights_the_levels():
    asf = AdaptiveScaleFusion(channels=16, levels=4).eval()
    x = torch.randn(2, 16, 8, 12)
    weights = asf.attention(x)
    assert weights.shape == (2, 4, 8, 12)
    assert (weights > 0).all() and (weights < 1).all()
    want = x.view(2, 4, 4, 8, 12) * weights[:, :, None]
    torch.testing.assert_close(asf(x), want.view(2, 16, 8, 12))
    with torch.no_grad():
        asf.scale.bias.copy_(torch.tensor([40.0, -40.0, 40.0, -40.0]))
        asf.scale.weight.zero_()
    out = asf(x).view(2, 4, 4, 8, 12)
    torch.testing.assert_close(out[:, 0::2], x.view(2, 4, 4, 8, 12)[:, 0::2])
    assert out[:, 1::2].abs().max() < 1e-12


def test_head_shapes_and_init():
    head = DBHead(32)
    assert head(torch.randn(1, 32, 5, 7)).shape == (1, 1, 20, 28)
    model = DBNet("mobilenet_v3_large")
    for module in list(model.neck.modules()) + list(model.prob_head.modules()):
        if isinstance(module, nn.BatchNorm2d):
            assert (module.weight == 1).all() and (module.bias == 1e-4).all()
    assert model.prob_head.out.bias.item() == 0.0


# --------------------------------------------------------------------------- deformable convs


def test_dcn_replaces_stage_3_to_5_convs():
    for backbone, count in [("resnet18", 6), ("resnet50", 13)]:
        net = build_backbone(backbone, dcn=True)
        dcns = [name for name, m in net.named_modules() if isinstance(m, ModulatedDeformConv2d)]
        assert len(dcns) == count, backbone
        assert all(name.split(".")[0] in ("layer2", "layer3", "layer4") for name in dcns)
        assert all(name.endswith("conv2") for name in dcns)
    with pytest.raises(ValueError, match="dcn"):
        DBNet("mobilenet_v3_large", dcn=True)


def test_dcn_starts_as_the_plain_conv():
    plain = DBNet("resnet18").eval()
    deform = DBNet("resnet18", dcn=True).eval()
    missing, unexpected = deform.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(".offset_mask." in k for k in missing)
    x = images(1)
    with torch.no_grad():
        torch.testing.assert_close(deform(x), plain(x), atol=1e-5, rtol=1e-4)
        # The offsets are used: moving them changes the output.
        deform.backbone.layer3[0].conv2.offset_mask.bias.fill_(0.7)
        assert (deform(x) - plain(x)).abs().max() > 1e-3


def test_dcn_forward_backward():
    model = DBNet("resnet18", dcn=True).train()
    out = model(images(2))
    total, _ = DBLoss()(out, random_targets((2, 1, 64, 64)))
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    offset_grads = [m.offset_mask.weight.grad for m in model.modules()
                    if isinstance(m, ModulatedDeformConv2d)]
    assert len(offset_grads) == 6 and all(g.abs().sum() > 0 for g in offset_grads)


# --------------------------------------------------------------------------- autocast


@pytest.mark.parametrize("neck, dcn", [("asf", False), ("fpn", True)])
def test_autocast_bfloat16_gives_float32_head_outputs(neck, dcn):
    model = DBNet("resnet18", neck=neck, dcn=dcn).train()
    seen = {}
    model.neck.register_forward_hook(lambda m, i, o: seen.update(neck=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images(2))
        total, terms = DBLoss()(out, random_targets((2, 64, 64)))
    assert seen["neck"] == torch.bfloat16  # autocast really ran the body in bf16
    for name, value in out.items():
        assert value.dtype == torch.float32, name
    assert total.dtype == torch.float32 and torch.isfinite(total)
    assert all(v.dtype == torch.float32 for v in terms.values())
    total.backward()
    grad = model.backbone.stem[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        prob = model.eval()(images(1))
    assert prob.dtype == torch.float32


# --------------------------------------------------------------------------- argument errors


@pytest.mark.parametrize("shape", [(1, 3, 63, 64), (1, 3, 64, 48), (1, 3, 0, 32)])
def test_size_not_multiple_of_32(shape):
    with pytest.raises(ValueError, match="multiples of 32"):
        DBNet("mobilenet_v3_large")(torch.zeros(shape))


def test_bad_inputs_and_arguments():
    model = DBNet("mobilenet_v3_large")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(3, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="backbone"):
        DBNet("vgg16")
    with pytest.raises(ValueError, match="neck"):
        DBNet("resnet18", neck="bifpn")
    with pytest.raises(ValueError, match="k must"):
        DBNet("resnet18", k=float("nan"))
    with pytest.raises(TypeError, match="dcn"):
        DBNet("resnet18", dcn="yes")


# --------------------------------------------------------------------------- loss


def test_dbloss_matches_float64_reference():
    model = bn_eval(DBNet("resnet18"))
    out = model(images(2))
    for name in ("prob_logits", "thresh_logits"):
        out[name].retain_grad()
    targets = random_targets((2, 64, 64))
    loss = DBLoss()
    total, terms = loss(out, targets)
    assert set(terms) == {"loss_bce", "loss_dice", "loss_l1"}
    total.backward()

    as_np = lambda t: t.detach().double().numpy()  # noqa: E731
    want, grad_prob, grad_thresh = db_loss_reference(
        as_np(out["prob_logits"]), as_np(out["thresh_logits"]),
        *(as_np(targets[k]).reshape(2, 1, 64, 64)
          for k in ("shrink_map", "shrink_mask", "thresh_map", "thresh_mask")),
    )
    assert total.item() == pytest.approx(want["total"], rel=1e-5)
    for ours, ref in [("loss_bce", "bce"), ("loss_dice", "dice"), ("loss_l1", "l1")]:
        assert terms[ours].item() == pytest.approx(want[ref], rel=1e-5, abs=1e-7), ours
    assert total.item() == pytest.approx(5 * want["bce"] + want["dice"] + 10 * want["l1"],
                                         rel=1e-5)
    for got, ref in [(out["prob_logits"].grad, grad_prob),
                     (out["thresh_logits"].grad, grad_thresh)]:
        err = np.abs(as_np(got) - ref)
        # fp32 vs fp64 may swap at most a pixel or two at the OHEM cut
        assert (err > 1e-4 * np.abs(ref).max() + 1e-9).sum() <= 2
    # Gradients reach the model.
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0


def test_dbloss_options_and_target_layouts():
    g = torch.Generator().manual_seed(3)
    out = {"prob_logits": torch.randn(2, 1, 32, 32, generator=g) * 4,
           "thresh_logits": torch.randn(2, 1, 32, 32, generator=g)}
    flat, chan = random_targets((2, 32, 32)), random_targets((2, 1, 32, 32))
    assert all(torch.equal(flat[k].unsqueeze(1), chan[k]) for k in flat)
    total_flat, _ = DBLoss()(out, flat)
    total_chan, _ = DBLoss()(out, chan)
    assert total_flat.item() == total_chan.item()

    custom = DBLoss(k=10, ohem_ratio=1, bce_weight=2, dice_weight=3, l1_weight=4)
    total, terms = custom(out, flat)
    want, _, _ = db_loss_reference(
        out["prob_logits"].double().numpy(), out["thresh_logits"].double().numpy(),
        *(chan[k].double().numpy() for k in ("shrink_map", "shrink_mask", "thresh_map",
                                            "thresh_mask")),
        k=10, ohem_ratio=1, bce_weight=2, dice_weight=3, l1_weight=4)
    assert total.item() == pytest.approx(want["total"], rel=1e-5)

    # 16-bit logits are computed in float32; float64 stays float64.
    half = {k: v.bfloat16() for k, v in out.items()}
    total_half, terms_half = DBLoss()(half, flat)
    total_ref, _ = DBLoss()({k: v.float() for k, v in half.items()}, flat)
    assert total_half.dtype == torch.float32 and total_half.item() == total_ref.item()
    total64, _ = DBLoss()({k: v.double() for k, v in out.items()}, flat)
    assert total64.dtype == torch.float64


def test_dbloss_errors():
    out = {"prob_logits": torch.zeros(1, 1, 32, 32), "thresh_logits": torch.zeros(1, 1, 32, 32)}
    targets = random_targets((1, 32, 32))
    with pytest.raises(KeyError, match="thresh_mask"):
        DBLoss()(out, {k: v for k, v in targets.items() if k != "thresh_mask"})
    with pytest.raises(KeyError, match="thresh_logits"):
        DBLoss()({"prob": out["prob_logits"], "prob_logits": out["prob_logits"]}, targets)
    with pytest.raises(ValueError, match="shrink_map"):
        DBLoss()(out, {**targets, "shrink_map": torch.zeros(1, 16, 16)})
    with pytest.raises(ValueError, match="ohem_ratio"):
        DBLoss(ohem_ratio=-1)


def test_one_step_reduces_the_loss():
    model = bn_eval(DBNet("resnet18"))  # fixed BN statistics: the loss is a function of weights
    x, targets = images(1), random_targets((1, 64, 64))
    criterion = DBLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    before, _ = criterion(model(x), targets)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after, _ = criterion(model(x), targets)
    assert after.item() < before.item() - 1e-3 * abs(before.item())


# --------------------------------------------------------------------------- pretrained weights


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("backbone, file_name", [
    ("resnet18", "resnet18-f37072fd.pth"),
    ("resnet50", "resnet50-0676ba61.pth"),
    ("mobilenet_v3_large", "mobilenet_v3_large-8738ca79.pth"),
])
def test_pretrained_offline_is_a_clear_error(hub_dir, monkeypatch, backbone, file_name):
    calls = []

    def unreachable(url, timeout=None):
        calls.append((url, timeout))
        raise urllib.error.URLError(socket.timeout("timed out"))

    monkeypatch.setattr(weights_module.urllib.request, "urlopen", unreachable)
    with pytest.raises(RuntimeError) as info:
        DBNet(backbone, pretrained_backbone=True)
    message = str(info.value)
    assert os.path.join(str(hub_dir), "checkpoints", file_name) in message
    assert "download.pytorch.org" in message
    assert len(calls) == 1 and calls[0][1] == weights_module.DOWNLOAD_TIMEOUT_S
    assert not os.listdir(hub_dir / "checkpoints")  # no partial file left behind


def test_pretrained_download_with_bad_hash_is_rejected(hub_dir, monkeypatch):
    monkeypatch.setattr(weights_module.urllib.request, "urlopen",
                        lambda url, timeout=None: io.BytesIO(b"not the weights"))
    with pytest.raises(RuntimeError, match="SHA-256"):
        build_backbone("resnet18", pretrained=True)
    assert not os.listdir(hub_dir / "checkpoints")


def test_pretrained_loads_from_the_hub_cache(hub_dir, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the cached file must be used without a download")

    monkeypatch.setattr(weights_module.urllib.request, "urlopen", no_network)
    reference = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        reference.conv1.weight.fill_(0.125)
        reference.layer3[1].conv2.weight.fill_(-0.25)
    (hub_dir / "checkpoints").mkdir()
    torch.save(reference.state_dict(), hub_dir / "checkpoints" / "resnet18-f37072fd.pth")
    model = DBNet("resnet18", dcn=True, pretrained_backbone=True)
    assert (model.backbone.stem[0].weight == 0.125).all()
    assert isinstance(model.backbone.layer3[1].conv2, ModulatedDeformConv2d)
    assert (model.backbone.layer3[1].conv2.weight == -0.25).all()
    torch.testing.assert_close(model.backbone.layer4[0].bn1.running_var,
                               reference.layer4[0].bn1.running_var)

    (hub_dir / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="could not load the cached weights"):
        DBNet("resnet18", pretrained_backbone=True)


# --------------------------------------------------------------------------- export


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter (no onnxscript)
def test_eval_model_exports_to_onnx(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = DBNet("mobilenet_v3_large", neck="asf").eval()
    path = str(tmp_path / "dbnet.onnx")
    torch.onnx.export(model, (images(1),), path, dynamo=False, input_names=["images"],
                      output_names=["prob"], dynamic_axes={"images": {0: "b", 2: "h", 3: "w"}})
    x = images(2, 96, 64, seed=5)
    (got,) = onnxruntime.InferenceSession(path).run(None, {"images": x.numpy()})
    with torch.no_grad():
        want = model(x)
    assert got.shape == (2, 1, 96, 64)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
