"""ImageNet backbone weights through torchvision's weights API, offline-safe.

torchvision's own ``weights.get_state_dict()`` downloads through ``urllib``
without a timeout, so on a machine without a network it can hang for minutes.
Here the file is looked up in the torch hub cache first
(``torch.hub.get_dir()/checkpoints/<file name of the weights url>``, the place
torchvision itself caches it); only when it is missing is it downloaded, with a
short socket timeout, and every failure becomes a RuntimeError that names the
file and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import torch

DOWNLOAD_TIMEOUT_S = 10.0
"""Socket timeout (seconds) for connecting and for each read of a download."""


class WeightsUnavailable(RuntimeError):
    """The weights file is neither cached nor downloadable, or cannot be read."""


def cache_path(url: str) -> str:
    """Where torch hub (and torchvision) cache the file of ``url``."""
    file_name = os.path.basename(urllib.parse.urlparse(url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", file_name)


def _expected_hash_prefix(path: str) -> str | None:
    """torchvision file names carry a SHA-256 prefix: ``resnet18-f37072fd.pth``."""
    match = torch.hub.HASH_REGEX.search(os.path.basename(path))
    return match.group(1) if match else None


def _download(url: str, path: str, timeout: float) -> None:
    """Download ``url`` to ``path`` atomically (temporary file in the same folder,
    then rename), checking the hash prefix in the file name."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=".pth")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        expected = _expected_hash_prefix(path)
        if expected and not digest.hexdigest().startswith(expected):
            raise ValueError(
                f"SHA-256 {digest.hexdigest()[:len(expected)]}... does not match the "
                f"expected prefix {expected}"
            )
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_state_dict(weights, timeout: float = DOWNLOAD_TIMEOUT_S) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision ``WeightsEnum`` member (e.g.
    ``ResNet18_Weights.IMAGENET1K_V1``), from the hub cache or downloaded.

    Raises:
        WeightsUnavailable (a RuntimeError): the file is not cached and could not be downloaded (no
            network, timeout, bad hash...), or the cached file cannot be read;
            the message says which file to place where.
    """
    path = cache_path(weights.url)
    if not os.path.isfile(path):
        try:
            _download(weights.url, path, timeout)
        except (OSError, ValueError, urllib.error.URLError) as error:
            raise WeightsUnavailable(
                f"pretrained_backbone: could not download {weights.url} "
                f"({type(error).__name__}: {error}). Without network access, download "
                f"that file elsewhere and place it at {path} "
                f"(torch.hub.get_dir() is {torch.hub.get_dir()}; set TORCH_HOME to move it)."
            ) from error
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsUnavailable(
            f"pretrained_backbone: could not load the cached weights file {path} "
            f"({type(error).__name__}: {error}); delete it or replace it with {weights.url}"
        ) from error
