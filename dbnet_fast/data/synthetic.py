"""Synthetic scene text for offline training and tests.

Words of random letters and digits are drawn with OpenCV's Hershey fonts on
synthesised backgrounds; every word comes with its exact polygon:

- a straight word (rotated, with mild perspective) has the quad of its glyph
  ink extents after the transform, in TL, TR, BR, BL order (clockwise in image
  coordinates; TL is the word's own top-left, so it follows the rotation);
- a curved word (glyphs placed and rotated one by one along an arc or a sine
  baseline) has 2n points: n along the top edge from the first glyph to the
  last, then n along the bottom edge back.

Coordinates follow the project convention: pixel (row i, column j) is the
point (x=j, y=i), so a polygon's edge passes half a pixel outside the outer
ink pixels. Words never overlap: a placement whose polygon (grown by
``SynthConfig.margin`` pixels) meets an earlier word's is rejected. A small
fraction of words is deliberately too small or of very low contrast and is
tagged ignore (transcription ``###``).

Everything is a pure function of a ``numpy.random.Generator``: OpenCV is used
only for drawing and warping, never for random numbers.
:class:`SyntheticTextDataset` derives the generator of image ``i`` from
``(seed, split, i)``, so DataLoader workers and repeated runs give identical
images.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field, fields

import cv2
import numpy as np
import torch

from dbnet_fast.data.seeding import SPLITS, sample_rng

ALPHABET = string.ascii_letters + string.digits
LEGIBLE_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
)
INK = 64  # a mask value at or above this (of 255) is ink for the polygon extents


def _pair(name, value, kind=float, low=None):
    try:
        a, b = (kind(v) for v in value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"SynthConfig: {name} must be a (low, high) pair, got {value!r}") from error
    if not a <= b or (low is not None and a < low):
        raise ValueError(f"SynthConfig: {name} must satisfy {low} <= low <= high, got {value!r}")
    return a, b


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`render_sample` draws. Ranges are inclusive ``(low, high)`` pairs."""

    words: tuple[int, int] = (3, 8)  # words tried per image (some may not fit)
    text_height: tuple[float, float] = (10.0, 60.0)  # font height in pixels (caps + ascenders)
    chars: tuple[int, int] = (2, 12)
    fonts: tuple[int, ...] = LEGIBLE_FONTS
    italic_prob: float = 0.2
    stroke: tuple[float, float] = (0.05, 0.14)  # line thickness / text height
    max_angle: float = 30.0  # degrees; half the words stay within max_angle / 5
    perspective: float = 0.1  # corner jitter of straight words, as a fraction of their height
    curved_prob: float = 0.15
    curve_bend: tuple[float, float] = (0.5, 1.5)  # turning of an arc baseline, radians
    curve_points: int = 7  # n: a curved word's polygon has 2n points
    plate_prob: float = 0.15  # a plain sign plate behind the word
    ignore_prob: float = 0.05  # words drawn too small or faint, tagged ignore
    min_contrast: float = 80.0  # luma difference (0-255) of legible text and its background
    clutter: tuple[int, int] = (0, 8)  # lines, boxes, circles, scribbles (not text)
    texture_prob: float = 0.25  # photo-like noise / grain backgrounds
    blur_prob: float = 0.15  # a mild blur of the whole image
    noise_prob: float = 0.3  # sensor-like noise on the whole image
    margin: int = 3  # minimum gap between word polygons, pixels
    max_tries: int = 12  # placements tried per word

    def __post_init__(self):
        _pair("words", self.words, int, 0)
        _pair("text_height", self.text_height, float, 4.0)
        _pair("chars", self.chars, int, 1)
        _pair("stroke", self.stroke, float, 0.0)
        _pair("curve_bend", self.curve_bend, float, 0.0)
        _pair("clutter", self.clutter, int, 0)
        if not self.fonts:
            raise ValueError("SynthConfig: fonts must not be empty")
        for f in fields(self):
            if f.name.endswith("_prob") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"SynthConfig: {f.name} must be in [0, 1], got "
                                 f"{getattr(self, f.name)}")
        if not 0 <= self.max_angle <= 180:
            raise ValueError(f"SynthConfig: max_angle must be in [0, 180], got {self.max_angle}")
        if not 0 <= self.perspective <= 0.3:
            raise ValueError("SynthConfig: perspective must be in [0, 0.3], got "
                             f"{self.perspective}")
        if self.curve_points < 2:
            raise ValueError(f"SynthConfig: curve_points must be >= 2, got {self.curve_points}")
        if self.margin < 0 or self.max_tries < 1:
            raise ValueError("SynthConfig: margin must be >= 0 and max_tries >= 1")

    @classmethod
    def easy(cls, **changes) -> SynthConfig:
        """A gentler mix for very short (CPU) training runs: larger, straighter,
        fewer words on calmer backgrounds; ``changes`` override single fields."""
        base = {"words": (2, 6), "text_height": (16.0, 48.0), "chars": (2, 8),
                "max_angle": 10.0, "perspective": 0.05, "curved_prob": 0.05,
                "plate_prob": 0.1, "ignore_prob": 0.02,
                    "clutter": (0, 3), "texture_prob": 0.1, "blur_prob": 0.0, "noise_prob": 0.1}
        base.update(changes)
        return cls(**base)


# ----------------------------------------------------------------------------- glyphs


def _font_height(font: int) -> int:
    return cv2.getTextSize("H", font, 1.0, 1)[0][1]


_HEIGHTS: dict[int, int] = {}


def _draw_text(text: str, font: int, scale: float, thickness: int):
    """Mask (h, w) uint8 of ``text`` and its baseline origin (x, y) in the mask."""
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad = thickness + 2 + th // 3  # room for italics and strokes beyond the metrics
    mask = np.zeros((th + base + 2 * pad, tw + 2 * pad), np.uint8)
    cv2.putText(mask, text, (pad, pad + th), font, scale, 255, thickness, cv2.LINE_AA)
    return mask, pad, pad + th


def _ink_box(mask):
    """(x0, y0, x1, y1) of the ink pixels (inclusive), or None."""
    cols = np.flatnonzero(mask.max(axis=0) >= INK)
    if cols.size == 0:
        return None
    rows = np.flatnonzero(mask.max(axis=1) >= INK)
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def _crop(mask, box):
    """The ink box plus a one-pixel fringe (anti-aliasing below INK), and its offset."""
    x0, y0, x1, y1 = box
    x0, y0 = max(x0 - 1, 0), max(y0 - 1, 0)
    return mask[y0 : y1 + 2, x0 : x1 + 2], x0, y0


def _translation(x, y):
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _rotation(radians):
    c, s = math.cos(radians), math.sin(radians)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _apply(matrix, points):
    """Points (N, 2) through a 3x3 projective matrix."""
    p = points @ matrix[:2, :2].T + matrix[:2, 2]
    w = points @ matrix[2, :2] + matrix[2, 2]
    return p / w[:, None]


@dataclass
class _Word:
    """A laid-out word in a local frame centred on its polygon's bounding box.

    ``pieces`` are (mask, 3x3 matrix from mask pixels to the local frame);
    ``polygon`` (N, 2) float64 in the local frame.
    """

    pieces: list
    polygon: np.ndarray
    text: str
    ignore: bool = False
    plate: bool = False
    extra: dict = field(default_factory=dict)

    def centre(self):
        lo, hi = self.polygon.min(0), self.polygon.max(0)
        shift = _translation(*(-(lo + hi) / 2))
        self.polygon = _apply(shift, self.polygon)
        self.pieces = [(m, shift @ t) for m, t in self.pieces]
        return self


def _straight_word(rng, cfg, text, font, scale, thickness, angle) -> _Word | None:
    mask, _, _ = _draw_text(text, font, scale, thickness)
    box = _ink_box(mask)
    if box is None:
        return None
    piece, ox, oy = _crop(mask, box)
    x0, y0 = box[0] - ox, box[1] - oy
    bw, bh = box[2] - box[0] + 1, box[3] - box[1] + 1
    # ink extents in the piece: pixel centres x0..x0+bw-1, edges half a pixel out
    src = np.array([[x0 - 0.5, y0 - 0.5], [x0 + bw - 0.5, y0 - 0.5],
                    [x0 + bw - 0.5, y0 + bh - 0.5], [x0 - 0.5, y0 + bh - 0.5]])
    dst = np.array([[-bw / 2, -bh / 2], [bw / 2, -bh / 2], [bw / 2, bh / 2], [-bw / 2, bh / 2]])
    if cfg.perspective > 0 and rng.random() < 0.5:
        jitter = cfg.perspective * min(bh, bw) * 0.5
        dst = dst + rng.uniform(-jitter, jitter, size=(4, 2))
    dst = _apply(_rotation(angle), dst)
    matrix = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    # the polygon is the image of the ink box under the very matrix used to warp
    return _Word([(piece, matrix)], _apply(matrix, src), text).centre()


def _baseline(rng, cfg, length, max_curvature):
    """A curved baseline of arc length ``length`` heading +x, curvature at most
    ``max_curvature`` (so glyphs on the inside of a bend do not collide).

    Returns (s, xy, theta, curvature): dense arc-length samples, points (M, 2),
    tangent angles (M,) and the largest |curvature|."""
    u = np.linspace(0.0, 1.0, 96)
    if rng.random() < 0.6:  # circular arc, bulging up or down
        bend = min(rng.uniform(*cfg.curve_bend), length * max_curvature)
        phi = (u - 0.5) * bend
        radius = length / max(bend, 1e-6)
        side = rng.choice((-1.0, 1.0))
        xy = np.stack([radius * np.sin(phi), side * radius * (1 - np.cos(phi))], 1)
        curvature = 1.0 / radius
    else:  # part of a sine wave, slopes kept below ~35 degrees
        periods = rng.uniform(0.5, 1.0)
        k = 2 * math.pi * periods / length
        amp = min(rng.uniform(0.08, 0.2) * length, 0.7 / k, max_curvature / (k * k))
        x = u * length
        xy = np.stack([x, amp * np.sin(k * x + rng.uniform(0, 2 * math.pi))], 1)
        curvature = amp * k * k
    seg = np.hypot(*np.diff(xy, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    d = np.gradient(xy, axis=0)
    theta = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    return s, xy, theta, curvature


def _curved_word(rng, cfg, text, font, scale, thickness, angle) -> _Word | None:
    glyphs = []  # (piece, piece offset, ink box, advance)
    tracking = max(1.0, 0.06 * scale * _HEIGHTS[font])
    for ch in text:
        mask, ox, by = _draw_text(ch, font, scale, thickness)
        box = _ink_box(mask)
        if box is None:
            return None
        piece, px, py = _crop(mask, box)
        glyphs.append((piece, px, py, ox, by, box))
    # lay the glyphs out on a straight line (pen position per glyph), ink to ink
    pens, pen = [], 0.0
    for piece, px, py, ox, by, box in glyphs:
        left = box[0] - 0.5 - ox
        pens.append(pen - left)
        pen = pens[-1] + (box[2] + 0.5 - ox) + tracking
    start = 0.0
    end = pen - tracking
    ascent = max(by - (b[1] - 0.5) for *_, by, b in glyphs)
    descent = max((b[3] + 0.5) - by for *_, by, b in glyphs)
    widths = [b[2] - b[0] + 1 for *_, b in glyphs]

    # the baseline runs from s = -1 to end + 1 (arc length 0 is at s = -1)
    max_curvature = 1.0 / (3.5 * (ascent + max(descent, 0)))
    s, xy, theta, curvature = _baseline(rng, cfg, end - start + 2.0, max_curvature)
    s = s - 1.0
    n = cfg.curve_points
    # Rigid glyphs on a curve stick out of the offset curves by ~ k w^2 / 8 on the
    # outside, and the polygon's chords between samples cut in by ~ k seg^2 / 8.
    seg = (end - start) / (n - 1)
    grow = 0.5 + curvature * ((max(widths) / 2) ** 2 / 2 + seg**2 / 8)
    top_off, bottom_off = ascent + grow, descent + grow

    def at(positions):
        x = np.interp(positions, s, xy[:, 0])
        y = np.interp(positions, s, xy[:, 1])
        t = np.interp(positions, s, theta)
        return np.stack([x, y], 1), t

    pieces, frames = [], []
    for (piece, px, py, ox, by, box), pen_x in zip(glyphs, pens):
        mid_ink = ((box[0] + box[2]) / 2 - ox)  # glyph centre relative to its pen
        (point,), (t,) = at([pen_x + mid_ink])
        # glyph mask pixel -> glyph frame (origin at the ink centre on the baseline) -> curve
        frame = _translation(*point) @ _rotation(t) @ _translation(-(ox + mid_ink), -by)
        pieces.append((piece, frame @ _translation(px, py)))
        frames.append((frame, by, box))

    pts, t = at(np.linspace(start, end, n))
    normal = np.stack([np.sin(t), -np.cos(t)], 1)  # "up" for the text
    top = pts + normal * top_off
    bottom = pts - normal * bottom_off
    # the end edges follow the end glyphs' own (rigid) sides, not the curve's normal
    (first, by0, box0), (last, by1, box1) = frames[0], frames[-1]
    left, right = box0[0] - 1.0, box1[2] + 1.0
    top[0], bottom[0] = _apply(first, np.array([[left, by0 - top_off], [left, by0 + bottom_off]]))
    top[-1], bottom[-1] = _apply(last, np.array([[right, by1 - top_off],
                                                 [right, by1 + bottom_off]]))
    polygon = np.concatenate([top, bottom[::-1]])
    spin = _rotation(angle)
    word = _Word([(p, spin @ m) for p, m in pieces], _apply(spin, polygon), text)
    return word.centre()


# ----------------------------------------------------------------------------- backgrounds


def _colour(rng):
    return rng.integers(0, 256, size=3).astype(np.float32)


def _luma(bgr):
    return 0.114 * bgr[..., 0] + 0.587 * bgr[..., 1] + 0.299 * bgr[..., 2]


def _smooth_noise(rng, height, width, cells, channels=1):
    """Value noise: a (cells x cells) random grid upsampled bicubically, float32 ~[0, 1]."""
    gh = max(2, round(cells * height / max(height, width))) + 1
    gw = max(2, round(cells * width / max(height, width))) + 1
    grid = rng.random((gh, gw, channels), dtype=np.float32)
    out = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return out.reshape(height, width, channels)


def _background(rng, cfg, height, width):
    """A smooth base (flat, gradient, colour clouds or a photo-like texture) computed
    at reduced resolution and upsampled, then clutter on top; uint8 (H, W, 3)."""
    kind = rng.random()
    if kind < 0.2:  # flat colour
        image = np.empty((height, width, 3), np.uint8)
        image[:] = rng.integers(0, 256, size=3, dtype=np.uint8)
        _clutter(rng, cfg, image)
        return image
    texture = kind >= 1 - cfg.texture_prob
    f = 2 if texture else 4
    h, w = -(-height // f), -(-width // f)
    if kind < 0.55:  # linear gradient
        a = rng.uniform(0, 2 * math.pi)
        ramp = (np.arange(w, dtype=np.float32)[None, :] * math.cos(a)
                + np.arange(h, dtype=np.float32)[:, None] * math.sin(a))
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
        c0, c1 = _colour(rng), _colour(rng)
        small = c0 + ramp[..., None] * (c1 - c0)
    elif not texture:  # soft colour clouds
        small = _smooth_noise(rng, h, w, int(rng.integers(2, 7)), 3) * 255
    else:  # photo-like texture: octaves of noise, optionally as grain or marble
        grey = (0.55 * _smooth_noise(rng, h, w, 3)
                + 0.3 * _smooth_noise(rng, h, w, 12)
                + 0.15 * _smooth_noise(rng, h, w, 48))[..., 0]
        if rng.random() < 0.5:
            a = rng.uniform(0, math.pi)
            freq = rng.uniform(0.02, 0.08) * f
            wave = (np.arange(w, dtype=np.float32)[None, :] * math.cos(a)
                    + np.arange(h, dtype=np.float32)[:, None] * math.sin(a))
            grey = 0.5 + 0.5 * np.sin(freq * wave + 8 * grey)
        grey = (grey - grey.min()) / max(float(np.ptp(grey)), 1e-3)
        c0, c1 = _colour(rng), _colour(rng)
        small = c0 + grey[..., None] * (c1 - c0)
    small = np.clip(small, 0, 255).astype(np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    _clutter(rng, cfg, image)
    return image


def _clutter(rng, cfg, image):
    """Shapes that are not text: lines, boxes, circles, scribbles, blurred patches."""
    height, width = image.shape[:2]
    side = max(height, width)
    for _ in range(int(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        thick = int(rng.integers(1, 5))
        kind = rng.random()
        p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if kind < 0.3:
            q = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(image, p, q, colour, thick, cv2.LINE_AA)
        elif kind < 0.5:
            dx, dy = (int(v) for v in rng.integers(-side // 3, side // 3, size=2))
            q = (p[0] + dx, p[1] + dy)
            cv2.rectangle(image, p, q, colour, -1 if rng.random() < 0.5 else thick, cv2.LINE_AA)
        elif kind < 0.7:
            r = int(rng.integers(4, max(5, side // 5)))
            cv2.circle(image, p, r, colour, -1 if rng.random() < 0.5 else thick, cv2.LINE_AA)
        elif kind < 0.85:
            axes = (int(rng.integers(4, side // 4 + 5)), int(rng.integers(4, side // 8 + 5)))
            cv2.ellipse(image, p, axes, float(rng.uniform(0, 180)), 0, float(rng.uniform(90, 360)),
                        colour, thick, cv2.LINE_AA)
        else:  # a smooth random walk, wider steps than any glyph stroke
            steps = rng.normal(0, side / 8, size=(int(rng.integers(3, 7)), 2)).cumsum(0) + p
            cv2.polylines(image, [np.round(steps).astype(np.int32)], False, colour, thick,
                          cv2.LINE_AA)
    if rng.random() < 0.3:
        w, h = int(rng.integers(side // 8, side // 2)), int(rng.integers(side // 8, side // 2))
        x, y = int(rng.integers(0, max(1, width - w))), int(rng.integers(0, max(1, height - h)))
        patch = image[y : y + h, x : x + w]
        k = 2 * int(rng.integers(2, 8)) + 1
        patch[:] = cv2.GaussianBlur(patch, (k, k), 0)


# ----------------------------------------------------------------------------- placement


def _footprint(polygon, grow, shape, origin):
    """uint8 mask (shape) of ``polygon`` grown by ``grow`` px, in a window at ``origin``."""
    mask = np.zeros(shape, np.uint8)
    pts = np.round((polygon - origin) * 16).astype(np.int32)[None]  # 4 fractional bits
    cv2.fillPoly(mask, pts, 1, cv2.LINE_8, 4)
    if grow > 0:
        cv2.polylines(mask, pts, True, 1, 2 * grow + 1, cv2.LINE_8, 4)
    return mask


def _window(polygon, grow, height, width):
    lo = np.floor(polygon.min(0)).astype(int) - grow - 1
    hi = np.ceil(polygon.max(0)).astype(int) + grow + 2
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, (width, height))
    return lo, hi


def _place(rng, cfg, word, occupied, plate_pad):
    """Moves ``word`` to a free random spot inside the image; False if none was found."""
    height, width = occupied.shape
    lo, hi = word.polygon.min(0), word.polygon.max(0)
    edge = 1.0 + plate_pad
    xs = (edge - 0.5 - lo[0], width - 0.5 - edge - hi[0])
    ys = (edge - 0.5 - lo[1], height - 0.5 - edge - hi[1])
    if xs[0] > xs[1] or ys[0] > ys[1]:
        return False
    grow = cfg.margin + plate_pad
    for _ in range(cfg.max_tries):
        shift = np.array([rng.uniform(*xs), rng.uniform(*ys)])
        polygon = word.polygon + shift
        (x0, y0), (x1, y1) = _window(polygon, grow, height, width)
        mask = _footprint(polygon, grow, (y1 - y0, x1 - x0), (x0, y0))
        if not (mask & occupied[y0:y1, x0:x1]).any():
            occupied[y0:y1, x0:x1] |= mask
            move = _translation(*shift)
            word.polygon = polygon
            word.pieces = [(m, move @ t) for m, t in word.pieces]
            return True
    return False


# ----------------------------------------------------------------------------- drawing


def _word_alpha(word, height, width, grow):
    """The word's coverage (uint8) in a window (x0, y0, x1, y1) of the image that
    holds the polygon grown by ``grow`` pixels."""
    (x0, y0), (x1, y1) = _window(word.polygon, grow, height, width)
    alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for piece, matrix in word.pieces:
        h, w = piece.shape
        corners = _apply(matrix, np.array([[-1, -1], [w, -1], [w, h], [-1, h]], float))
        gx0, gy0 = np.maximum(np.floor(corners.min(0)).astype(int), (x0, y0))
        gx1, gy1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, (x1, y1))
        if gx1 <= gx0 or gy1 <= gy0:
            continue
        m = _translation(-gx0, -gy0) @ matrix
        size = (int(gx1 - gx0), int(gy1 - gy0))
        if abs(m[2, 0]) < 1e-12 and abs(m[2, 1]) < 1e-12:
            warped = cv2.warpAffine(piece, m[:2] / m[2, 2], size, flags=cv2.INTER_LINEAR)
        else:
            warped = cv2.warpPerspective(piece, m, size, flags=cv2.INTER_LINEAR)
        view = alpha[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
        np.maximum(view, warped, out=view)
    return alpha, (x0, y0, x1, y1)


def _text_colour(rng, background, contrast):
    """A random colour whose luma differs from ``background``'s by about ``contrast`` or more."""
    colour = _colour(rng)
    bg = float(_luma(background))
    if abs(float(_luma(colour)) - bg) >= contrast:
        return colour
    # shift the colour's luma to the far side of the background, keeping its hue
    room_up, room_down = 255 - bg, bg
    if room_up >= contrast and (room_up > room_down or room_down < contrast):
        target = rng.uniform(bg + contrast, 255)
    elif room_down >= contrast:
        target = rng.uniform(0, bg - contrast)
    else:
        target = 255.0 if room_up > room_down else 0.0
    colour = np.clip(colour + (target - float(_luma(colour))), 0, 255)
    if abs(float(_luma(colour)) - bg) < contrast:  # the hue could not carry it: go grey
        colour = np.full(3, target, np.float32)
    return colour.astype(np.float32)


def _draw_word(rng, cfg, image, word, plate_pad, labels, label):
    height, width = image.shape[:2]
    alpha_u8, (x0, y0, x1, y1) = _word_alpha(word, height, width, plate_pad + 1)
    roi = image[y0:y1, x0:x1]
    if word.plate:
        plate = _footprint(word.polygon, plate_pad, roi.shape[:2], (x0, y0)).astype(bool)
        roi[plate] = rng.integers(0, 256, size=3).astype(np.uint8)
    alpha = alpha_u8.astype(np.float32) * (1.0 / 255.0)
    weight = float(alpha.sum())
    if weight <= 0:
        return
    background = (roi.astype(np.float32) * alpha[..., None]).sum((0, 1)) / weight
    if word.extra.get("faint"):
        colour = background + rng.choice((-1.0, 1.0)) * rng.uniform(12, 28)
        colour = np.clip(colour, 0, 255)
    else:
        colour = _text_colour(rng, background, cfg.min_contrast)
    mixed = roi.astype(np.float32)
    mixed += alpha[..., None] * (colour - mixed)
    roi[:] = np.round(mixed).astype(np.uint8)
    if labels is not None:
        labels[y0:y1, x0:x1][alpha_u8 >= 128] = label


def _make_word(rng, cfg, width, height):
    """A random word laid out in its local frame, sized to fit the image, or None."""
    n = int(rng.integers(cfg.chars[0], cfg.chars[1] + 1))
    text = "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), size=n))
    font = int(rng.choice(cfg.fonts))
    if rng.random() < cfg.italic_prob:
        font |= cv2.FONT_ITALIC
    if font not in _HEIGHTS:
        _HEIGHTS[font] = _font_height(font)
    kind = rng.random()
    ignore = kind < cfg.ignore_prob
    faint = ignore and rng.random() < 0.5
    if ignore and not faint:  # too small to read
        text_h = rng.uniform(4.0, 7.0)
    else:
        text_h = rng.uniform(*cfg.text_height)
    stroke = rng.uniform(*cfg.stroke)
    curved = rng.random() < cfg.curved_prob and n >= 3
    limit = cfg.max_angle if rng.random() < 0.5 else cfg.max_angle / 5
    angle = math.radians(rng.uniform(-limit, limit))
    if curved:
        angle *= 0.5
    for _ in range(4):  # shrink (fewer letters, then smaller) until it fits
        scale = text_h / _HEIGHTS[font]
        thickness = max(1, round(stroke * text_h))
        layout = _curved_word if curved else _straight_word
        word = layout(rng, cfg, text, font, scale, thickness, angle)
        if word is None:
            return None
        extent = np.ptp(word.polygon, axis=0)
        room = min((width - 8) / extent[0], (height - 8) / extent[1])
        if room >= 1:
            word.ignore = ignore
            word.extra["faint"] = faint
            word.plate = not ignore and rng.random() < cfg.plate_prob
            return word
        if len(text) > 2:
            text = text[: max(2, int(len(text) * room))]
        else:
            text_h *= room * 0.95
            if text_h < 4:
                return None
    return None


def render_sample(rng_or_seed, size=(320, 320), config: SynthConfig | None = None,
                  return_labels: bool = False):
    """Draws one synthetic scene-text image.

    Args:
        rng_or_seed: a ``numpy.random.Generator`` (consumed) or an int seed.
        size: (height, width) in pixels.
        config: a :class:`SynthConfig` (defaults if None).
        return_labels: also return an int32 (H, W) map holding, per pixel,
            1 + the index of the word whose ink (coverage >= 1/2) is there, else 0.

    Returns:
        ``(image, polygons, ignore, texts)`` (plus ``labels`` if asked):
        image (H, W, 3) uint8 BGR; polygons a list of float32 (N_i, 2) arrays
        of (x, y) pixels (4 points for straight words, 2n for curved ones);
        ignore a list of bools; texts the words (``"###"`` when ignored).
    """
    if isinstance(rng_or_seed, np.random.Generator):
        rng = rng_or_seed
    elif isinstance(rng_or_seed, (int, np.integer)) and not isinstance(rng_or_seed, bool):
        rng = np.random.default_rng(int(rng_or_seed))
    else:
        raise TypeError(f"render_sample: rng_or_seed must be a numpy Generator or an int, "
                        f"got {type(rng_or_seed).__name__}")
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError) as error:
        raise TypeError(f"render_sample: size must be (height, width), got {size!r}") from error
    if height < 32 or width < 32:
        raise ValueError(f"render_sample: size must be at least 32 x 32, got {size!r}")
    cfg = config if config is not None else SynthConfig()
    if not isinstance(cfg, SynthConfig):
        raise TypeError(f"render_sample: config must be a SynthConfig, got {type(cfg).__name__}")

    image = _background(rng, cfg, height, width)
    occupied = np.zeros((height, width), np.uint8)
    labels = np.zeros((height, width), np.int32) if return_labels else None
    polygons, ignore, texts = [], [], []
    for _ in range(int(rng.integers(cfg.words[0], cfg.words[1] + 1))):
        word = _make_word(rng, cfg, width, height)
        if word is None:
            continue
        text_h = float(np.ptp(word.polygon[:, 1])) if len(word.polygon) else 0.0
        plate_pad = round(0.25 * min(text_h, 40)) + 2 if word.plate else 0
        if not _place(rng, cfg, word, occupied, plate_pad):
            continue
        _draw_word(rng, cfg, image, word, plate_pad, labels, len(polygons) + 1)
        polygons.append(word.polygon.astype(np.float32))
        ignore.append(bool(word.ignore))
        texts.append("###" if word.ignore else word.text)

    if rng.random() < cfg.blur_prob:
        image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.5, 0.9))
    if rng.random() < cfg.noise_prob:
        # a tiled 64 x 64 grain, added with saturation as its positive and negative parts
        tile = np.round(rng.normal(0, rng.uniform(2, 7), size=(64, 64, 1)))
        reps = (-(-height // 64), -(-width // 64), 3)
        up = np.tile(np.clip(tile, 0, 255).astype(np.uint8), reps)[:height, :width]
        down = np.tile(np.clip(-tile, 0, 255).astype(np.uint8), reps)[:height, :width]
        image = cv2.subtract(cv2.add(image, up), down)
    if return_labels:
        return image, polygons, ignore, texts, labels
    return image, polygons, ignore, texts


class SyntheticTextDataset(torch.utils.data.Dataset):
    """``num_images`` synthetic images; image ``i`` is a pure function of (seed, split, i).

    Args:
        num_images: dataset length.
        size: (height, width) of the rendered images (or an int for squares).
        seed: base seed; the ``"train"`` and ``"val"`` splits draw from disjoint
            seed sequences, so no val image repeats a train image.
        split: ``"train"`` or ``"val"``.
        transform: called as ``transform(image, polygons, ignore, rng=...)`` and
            returning the sample dict (see :mod:`dbnet_fast.data.transforms`);
            default :class:`~dbnet_fast.data.transforms.EvalTransform` ``()``
            (no augmentation, size rounded to multiples of 32, label maps).
            Its ``rng`` depends on (seed, split, epoch, i): see :meth:`set_epoch`.
        config: a :class:`SynthConfig`.

    ``dataset[i]`` is the transform's dict plus ``texts`` (list of str).
    :meth:`render` gives the raw ``(image, polygons, ignore, texts)``.
    """

    def __init__(self, num_images: int, size=(320, 320), seed: int = 0, split: str = "train",
                 transform=None, config: SynthConfig | None = None):
        if (isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer))
                or num_images < 0):
            raise ValueError("SyntheticTextDataset: num_images must be an int >= 0, got "
                             f"{num_images!r}")
        if split not in SPLITS:
            raise ValueError(f"SyntheticTextDataset: split must be one of {tuple(SPLITS)}, got "
                             f"{split!r}")
        if isinstance(size, (int, np.integer)):
            size = (int(size), int(size))
        try:
            self.size = tuple(int(v) for v in size)
        except (TypeError, ValueError) as error:
            raise TypeError("SyntheticTextDataset: size must be (height, width), got "
                            f"{size!r}") from error
        if len(self.size) != 2 or min(self.size) < 32:
            raise ValueError("SyntheticTextDataset: size must be (height, width) >= 32, got "
                             f"{size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"SyntheticTextDataset: seed must be an int >= 0, got {seed!r}")
        if config is not None and not isinstance(config, SynthConfig):
            raise TypeError("SyntheticTextDataset: config must be a SynthConfig")
        if transform is None:
            from dbnet_fast.data.transforms import EvalTransform

            transform = EvalTransform()
        self.num_images = int(num_images)
        self.seed = int(seed)
        self.split = split
        self.transform = transform
        self.config = config if config is not None else SynthConfig()
        self.epoch = 0

    def __len__(self):
        return self.num_images

    def set_epoch(self, epoch: int):
        """Picks the augmentation randomness of an epoch (images do not change)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"SyntheticTextDataset: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def _check(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError("SyntheticTextDataset: index must be an int, got "
                            f"{type(index).__name__}")
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"SyntheticTextDataset: index {index} out of range for "
                             f"{self.num_images} images")
        return int(index) % self.num_images

    def render(self, index: int):
        """``(image, polygons, ignore, texts)`` of image ``index`` (see :func:`render_sample`)."""
        index = self._check(index)
        rng = sample_rng(self.seed, SPLITS[self.split], index)
        return render_sample(rng, self.size, self.config)

    def __getitem__(self, index):
        index = self._check(index)
        image, polygons, ignore, texts = self.render(index)
        rng = sample_rng(self.seed, SPLITS[self.split], index, self.epoch, 1)
        sample = self.transform(image, polygons, ignore, rng=rng)
        sample["texts"] = texts
        return sample
