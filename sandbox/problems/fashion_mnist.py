"""Fashion-MNIST from idx files (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747), and ``fmnist-bncnn``.

Where the files are looked for, in order: the ``data_dir`` argument (``--data-dir``), the
environment variable ``SANDBOX_FASHION_MNIST_DIR``, then the Debian package
``dataset-fashion-mnist``'s location ``/usr/share/datasets/fashion-mnist``. Each of the four files
``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` may be gzipped (``.gz``) or not.

Checksums: the SHA-256 of the DECOMPRESSED idx bytes is verified (Debian re-compresses the archives,
so their .gz MD5s differ from the publisher's while the content is identical); a download is
also checked against the publisher's .gz MD5s (zalandoresearch/fashion-mnist README). Parsed
tensors are cached in :func:`~sandbox.problems.problem.cache_dir`, keyed on the source files'
size and modification time, so the files are hashed once. idx format (LeCun's MNIST page):
big-endian int32 magic (2051 images, 2049 labels), counts and sizes, then uint8 data
(images from byte 16, labels from byte 8).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .models import bn_cnn2d
from .problem import (DataMissingError, Problem, cache_dir, register_problem, split_holdout,
                      to_device)

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "SANDBOX_FASHION_MNIST_DIR"
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # canonical (publisher's README)
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
RAW_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
GZ_MD5 = {  # the publisher's archives
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}


class ChecksumError(ValueError):
    """A data file's content is not the published one."""


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    return Path(data_dir or os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _find(d: Path, stem: str) -> Path | None:
    for p in (d / f"{stem}.gz", d / stem):
        if p.is_file():
            return p
    return None


def missing_message(d: Path, missing: list[str]) -> str:
    return (f"Fashion-MNIST not found in {d} (missing {', '.join(missing)}[.gz]). Get it with "
            f"`apt-get install dataset-fashion-mnist` (Debian/Ubuntu, installs to {DEFAULT_DIR}), "
            f"or download the four files from {URL} (pass download=True / --download to do it "
            f"here), or point --data-dir or ${ENV_VAR} at a folder that holds them")


def download(d: Path) -> None:
    """Fetch the four archives from the canonical URL into ``d``, checking the publisher's MD5."""
    d.mkdir(parents=True, exist_ok=True)
    for stem in FILES:
        if _find(d, stem):
            continue
        tmp = d / f"{stem}.gz.part"
        try:
            urllib.request.urlretrieve(URL + stem + ".gz", tmp)
        except (urllib.error.URLError, OSError) as e:
            tmp.unlink(missing_ok=True)
            raise DataMissingError(f"could not download {URL}{stem}.gz ({e}); "
                                   + missing_message(d, [stem])) from e
        md5 = hashlib.md5(tmp.read_bytes()).hexdigest()
        if md5 != GZ_MD5[stem]:
            tmp.unlink()
            raise ChecksumError(f"downloaded {stem}.gz has MD5 {md5}, expected {GZ_MD5[stem]}")
        tmp.replace(d / f"{stem}.gz")


def parse_idx(raw: bytes, stem: str) -> np.ndarray:
    """uint8 array of an idx file: (n, rows, cols) images or (n,) labels."""
    magic = struct.unpack(">i", raw[:4])[0]
    if magic == 2051:
        n, rows, cols = struct.unpack(">iii", raw[4:16])
        return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)
    if magic == 2049:
        (n,) = struct.unpack(">i", raw[4:8])
        return np.frombuffer(raw, dtype=np.uint8, offset=8).reshape(n)
    raise ChecksumError(f"{stem}: not an idx file (magic number {magic}, expected 2051 or 2049)")


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, download_missing: bool = False,
                       verify: bool = True) -> dict[str, torch.Tensor]:
    """The four arrays as uint8 tensors: ``train_x`` (60000, 28, 28), ``train_y``, ``test_x``
    (10000, 28, 28), ``test_y``. Raises :class:`DataMissingError` (saying how to get the data)
    when files are missing and ``download_missing`` is off, :class:`ChecksumError` on a mismatch."""
    d = resolve_data_dir(data_dir)
    paths = {stem: _find(d, stem) for stem in FILES}
    missing = [s for s, p in paths.items() if p is None]
    if missing and download_missing:
        download(d)
        paths = {stem: _find(d, stem) for stem in FILES}
    elif missing:
        raise DataMissingError(missing_message(d, missing))
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths.values()]
    key = hashlib.sha256(repr(stamp).encode()).hexdigest()[:16]
    cache = cache_dir() / f"fashion-mnist-{key}.pt"
    if cache.exists():
        return torch.load(cache)
    arrays = {}
    for stem, p in paths.items():
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        if verify and hashlib.sha256(raw).hexdigest() != RAW_SHA256[stem]:
            raise ChecksumError(f"{p}: content does not match the published Fashion-MNIST "
                                f"{stem} (SHA-256 of the decompressed bytes); re-fetch it")
        arrays[stem] = torch.from_numpy(parse_idx(raw, stem).copy())
    out = {"train_x": arrays[FILES[0]], "train_y": arrays[FILES[1]],
           "test_x": arrays[FILES[2]], "test_y": arrays[FILES[3]]}
    if verify:
        tmp = cache.with_suffix(".tmp")
        torch.save(out, tmp)
        tmp.replace(cache)
    return out


@register_problem("fmnist-bncnn", "Fashion-MNIST (idx files from --data-dir), 2-D CNN with "
                                  "BatchNorm")
def fmnist_bncnn(device, size, dtype, data_dir=None, download: bool = False, **options) -> Problem:
    """Fashion-MNIST 28×28 (60000 train, of which 5000 held out for validation, 10000 test),
    pixels standardised with the training mean and std. Model: two [Conv3×3 → BN → ReLU →
    MaxPool] blocks and a BN'd hidden linear layer — channels (16, 32), hidden 64 at size 'cpu'
    (3 epochs); (64, 128), hidden 256 at 'gpu' (10 epochs). Batch 128."""
    if options:
        raise ValueError(f"fmnist-bncnn takes no option(s) {', '.join(map(repr, options))}")
    raw = load_fashion_mnist(data_dir, download_missing=download)
    x = raw["train_x"].to(torch.float32) / 255.0
    mean, std = x.mean(dtype=torch.float64).item(), x.std().item()
    x = (x - mean) / std
    xt = (raw["test_x"].to(torch.float32) / 255.0 - mean) / std
    train, valid = split_holdout(x, raw["train_y"].long(), 5000, 20240501)
    channels, hidden, epochs = ((16, 32), 64, 3) if size == "cpu" else ((64, 128), 256, 10)
    return Problem(
        name="fmnist-bncnn", description=f"Fashion-MNIST, BN-CNN {channels} hidden {hidden}",
        build_model=lambda: bn_cnn2d(28, channels, hidden, 10),
        train=to_device(train, device, dtype), valid=to_device(valid, device, dtype),
        test=to_device((xt, raw["test_y"].long()), device, dtype), batch_size=128, epochs=epochs,
        target_accuracy=0.85, num_classes=10, size=size, device=device, dtype=dtype,
        stack_seeds=device.type == "cuda", evals_per_epoch=4,
        source=f"Fashion-MNIST idx files from {resolve_data_dir(data_dir)} (content checksummed)",
    )
