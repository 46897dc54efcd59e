"""The problems registry: data, models, ground truth of scale invariance, Fashion-MNIST loading."""
import gzip
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sandbox.problems import DataMissingError, available_problems, get_problem
from sandbox.problems import fashion_mnist as fm
from sandbox.training import resolve_hyperparameters

CHEAP = ["digits-bnmlp", "mnist1d-bncnn", "teacher-student", "teacher-student-bn", "teacher-student-large"]
HAS_FMNIST = all((fm.DEFAULT_DIR / f"{s}.gz").is_file() for s in fm.FILES)


def test_registry_lists_every_problem():
    assert set(CHEAP + ["fmnist-bncnn"]) <= set(available_problems())


def test_unknown_problem_names_close_matches():
    with pytest.raises(ValueError, match=r"unknown problem 'digits-bnmpl'; did you mean 'digits-bnmlp'"):
        get_problem("digits-bnmpl")


@pytest.mark.parametrize("name", CHEAP)
def test_problem_data_and_model(name):
    p = get_problem(name, dtype=torch.float64)
    sizes = [len(s[1]) for s in (p.train, p.valid, p.test)]
    assert min(sizes) > 0 and p.steps_per_epoch == sizes[0] // p.batch_size >= 1
    for x, y in (p.train, p.valid, p.test):
        assert x.dtype == torch.float64 and y.dtype == torch.long and len(x) == len(y)
        assert torch.isfinite(x).all() and int(y.min()) >= 0 and int(y.max()) < p.num_classes
    # every class present in training; splits disjoint (no test example duplicated in train)
    assert len(torch.unique(p.train[1])) == p.num_classes
    train_rows = {tuple(r) for r in p.train[0].reshape(len(p.train[0]), -1).tolist()}
    test_rows = [tuple(r) for r in p.test[0].reshape(len(p.test[0]), -1).tolist()]
    assert sum(r in train_rows for r in test_rows) < 0.02 * len(test_rows)
    m = p.build(seed=3)
    same, other = p.build(3).state_dict(), p.build(4).state_dict()
    assert all(torch.equal(v, same[k]) for k, v in m.state_dict().items())
    logits = m(p.train[0][: p.batch_size])
    assert logits.shape == (p.batch_size, p.num_classes) and logits.dtype == torch.float64
    assert not torch.equal(same["body.0.weight"], other["body.0.weight"])
    assert p.epochs > 0 and 0 < p.target_accuracy < 1


def test_building_a_model_leaves_the_global_rng_alone():
    p = get_problem("digits-bnmlp")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    p.build(0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", CHEAP)
def test_scale_invariant_weights_are_exactly_those_feeding_a_norm(name):
    """Scaling a listed weight by 3 leaves the training-mode output unchanged up to the
    normaliser's eps (it enters as var + eps: a relative effect ~eps/var ~ 1e-5 here); scaling
    any other weight matrix (the classifier) changes it at order one. Cross-checked with the
    probes' analysis of the module graph."""
    p = get_problem(name, dtype=torch.float64)
    m = p.build(0).train()
    x = p.train[0][: p.batch_size]
    with torch.no_grad():
        base = m(x)
    invariant = set(p.scale_invariant)
    assert invariant
    for pname, w in m.named_parameters():
        if w.ndim < 2:
            continue
        with torch.no_grad():
            w.mul_(3.0)
            out = m(x)
            w.div_(3.0)
        change = float((out - base).abs().max() / base.abs().max())
        if pname in invariant:
            assert change < 1e-3, (pname, change)
        else:
            assert change > 1e-1, (pname, change)
    probes = pytest.importorskip("sandbox.probes")
    truth = probes.scale_invariance_ground_truth(m)
    assert {k for k, v in truth.items() if v.scale_invariant} == invariant


def test_layernorm_student_is_invariant_as_a_whole_not_per_row():
    p = get_problem("teacher-student", dtype=torch.float64)
    m = p.build(0)
    x = p.train[0][:16]
    base = m(x)
    with torch.no_grad():
        m.body[0].weight[0].mul_(3.0)  # one row: LayerNorm mixes the features, so it matters
    assert not torch.allclose(m(x), base)


def test_mnist1d_is_generated_locally_and_restores_the_global_rngs(monkeypatch):
    import mnist1d.data

    monkeypatch.setattr(mnist1d.data, "get_dataset",
                        lambda *a, **k: pytest.fail("the download path must never be used"))
    np.random.seed(7)
    random.seed(7)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    p = get_problem("mnist1d-bncnn")
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before
    assert p.train[0].shape[1] == 40 and len(p.test[1]) == 1000


def test_gpu_size_is_wider_and_cuda_is_refused_without_cuda():
    small, big = get_problem("digits-bnmlp"), get_problem("digits-bnmlp", size="gpu")
    n = lambda p: sum(t.numel() for t in p.build(0).parameters())  # noqa: E731
    assert big.size == "gpu" and n(big) > 4 * n(small)
    with pytest.raises(ValueError, match="invalid size='huge'"):
        get_problem("digits-bnmlp", size="huge")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_problem("digits-bnmlp", device="cuda")


@pytest.mark.gpu
def test_cuda_selects_the_gpu_size():
    p = get_problem("mnist1d-bncnn", device="cuda")
    assert p.size == "gpu" and p.train[0].is_cuda and p.build(0)(p.train[0][:4]).is_cuda


def test_hyperparameters_fill_required_values_with_provenance():
    p = get_problem("digits-bnmlp")
    hp, prov = resolve_hyperparameters("sgdp", p)
    assert hp["lr"] == p.fallback_hp["lr"] and "fallback" in prov["lr"][1]
    hp, prov = resolve_hyperparameters("rfadamw", p, {"lr": 1e-3})
    assert hp["batch_size"] == p.batch_size and prov["lr"] == (1e-3, "given")
    with pytest.raises(ValueError, match="batch_size=32 must equal the problem's batch size 64"):
        resolve_hyperparameters("rfadamw", p, {"batch_size": 32})
    with pytest.raises(ValueError, match="invalid lr"):
        resolve_hyperparameters("adamw", p, {"lr": -1.0})


# --- Fashion-MNIST ------------------------------------------------------------------------------
def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    with pytest.raises(DataMissingError) as e:
        get_problem("fmnist-bncnn", data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg
    assert fm.ENV_VAR in msg and fm.URL in msg and "\n" not in msg


def test_fashion_mnist_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path))
    assert fm.resolve_data_dir() == tmp_path
    assert fm.resolve_data_dir(tmp_path / "x") == tmp_path / "x"  # the argument wins


def test_idx_parser_reads_images_and_labels():
    images = bytes.fromhex("00000803 00000002 00000002 00000003") + bytes(range(12))
    labels = bytes.fromhex("00000801 00000002") + bytes([7, 9])
    assert fm.parse_idx(images, "x").shape == (2, 2, 3) and fm.parse_idx(images, "x")[1, 1, 2] == 11
    assert fm.parse_idx(labels, "y").tolist() == [7, 9]
    with pytest.raises(fm.ChecksumError, match="not an idx file"):
        fm.parse_idx(bytes(16), "z")


@pytest.mark.skipif(not HAS_FMNIST, reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_loads_verifies_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    raw = fm.load_fashion_mnist()
    assert raw["train_x"].shape == (60000, 28, 28) and raw["test_x"].shape == (10000, 28, 28)
    assert raw["train_y"].dtype == torch.uint8 and sorted(raw["test_y"].unique().tolist()) == list(range(10))
    assert len(list((tmp_path / "cache").glob("fashion-mnist-*.pt"))) == 1
    again = fm.load_fashion_mnist()  # from the cache
    assert torch.equal(again["test_x"], raw["test_x"])
    p = get_problem("fmnist-bncnn")
    assert len(p.train[1]) == 55000 and len(p.valid[1]) == 5000 and p.train[0].shape[1:] == (28, 28)
    assert abs(float(p.train[0].mean())) < 0.05


@pytest.mark.skipif(not HAS_FMNIST, reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_with_altered_content_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "data"
    d.mkdir()
    for stem in fm.FILES[:3]:
        os.symlink(fm.DEFAULT_DIR / f"{stem}.gz", d / f"{stem}.gz")
    labels = bytearray(gzip.decompress((fm.DEFAULT_DIR / f"{fm.FILES[3]}.gz").read_bytes()))
    labels[100] = (labels[100] + 1) % 10  # one label changed: still a valid idx file
    (d / fm.FILES[3]).write_bytes(bytes(labels))  # uncompressed files are accepted too
    with pytest.raises(fm.ChecksumError, match="does not match the published Fashion-MNIST"):
        fm.load_fashion_mnist(d)
    assert not list((tmp_path / "cache").glob("*.pt"))  # nothing cached from bad data
    shutil.rmtree(d)
    assert not Path(d).exists()


def test_teacher_student_data_is_unchanged_and_the_large_one_has_its_sizes():
    from sandbox.problems.catalogue import SPLIT_SEED, teacher_student_data

    x, y = teacher_student_data(16384 + 1024 + 2048, 32, 16, 10, SPLIT_SEED)
    p = get_problem("teacher-student", dtype=torch.float64)
    assert torch.equal(p.test[0], x[-2048:]) and torch.equal(p.train[1], y[:16384])
    big = get_problem("teacher-student-large")
    assert [len(s[1]) for s in (big.train, big.valid, big.test)] == [16384, 1024, 16384]
    assert big.scale_invariant == ("body.0.weight", "body.3.weight") and big.stack_seeds
    # every class is in the test set (measured: 3% to 16% of it per class, as the docstring says)
    counts = torch.bincount(big.test[1], minlength=10)
    assert (counts > 0).all() and int(counts.sum()) == 16384
