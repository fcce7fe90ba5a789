"""Bad input, case by case: exit status 2, one line naming the key or file, no traceback, nothing written.

Every section of the suite file, the file itself (encoding, duplicate keys, aliases), ``--set``,
``--include``, ``--out``, and every file format the dataset loaders read (``.amat``, Omniglot zips,
image folders and ``chardata.mat``, IDX files plain and gzipped, CIFAR pickles). Each case runs
``memorybench run`` on a tiny suite and checks the promise of the README: one line on stderr
that contains the expected text, exit status 2, and no output directory.
"""

from __future__ import annotations

import gzip
import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from memorybench.runners.cli import main

TINY: dict[str, Any] = {
    "name": "tiny",
    "defaults": {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16},
    "memories": {"vae": {}},
    "datasets": {"digits": {}},
    "benchmarks": {"elbo": {"max_episodes": 2}},
    "train": {"steps": 2, "batch_episodes": 2},
}


def expect_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], expected: str, out: Path | None = None
) -> str:
    """``main(argv)`` exits 2 with one stderr line containing ``expected``; nothing is written to ``out``."""
    out = out or tmp_path / "results"
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, f"exit {code}; stderr: {captured.err!r}"
    assert captured.err.count("\n") == 1 and captured.err.startswith("memorybench: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert expected in captured.err, captured.err
    assert not out.exists(), f"{out} was written"
    assert not list(tmp_path.glob(".memorybench-probe-*"))
    return captured.err


def run_argv(suite: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", str(suite), "--out", str(tmp_path / "results"), "--no-progress", *extra]


def with_(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of ``base`` (default TINY) with dotted ``path`` set to ``value``."""
    suite = yaml.safe_load(yaml.safe_dump(base or TINY))
    keys = path.split(".")
    target = suite
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value
    return suite


# ---------------------------------------------------------------------------- the suite file, section by section
SUITE_CASES: list[tuple[str, Any, str]] = [
    # (case id, the suite (dict) or its raw text (str), expected text)
    ("top-level-list", "- vae\n- gpm\n", "a suite file must be a YAML mapping, got list"),
    ("top-level-scalar", "just words\n", "a suite file must be a YAML mapping, got str"),
    ("unknown-section", with_("trian", {"steps": 1}), "unknown suite key 'trian' (did you mean 'train'?)"),
    ("train-list", with_("train", [1, 2]), "train: expected a mapping of settings, got list"),
    ("train-string", with_("train", "fast"), "train: expected a mapping of settings, got str"),
    ("train-unknown-key", with_("train.stepz", 3), "train: unknown key 'stepz' (did you mean 'steps'?)"),
    ("train-steps-negative", with_("train.steps", -1), "train.steps: must be >= 0"),
    ("train-steps-float", with_("train.steps", 1.5), "train.steps: expected an integer"),
    ("learning-rate-inf", with_("train.learning_rate", float("inf")), "train.learning_rate: expected a finite number"),
    ("learning-rate-nan", with_("train.learning_rate", float("nan")), "train.learning_rate: expected a finite number"),
    ("learning-rate-overflow", with_("train.learning_rate", "1e400"), "train.learning_rate: expected a finite number"),
    ("learning-rate-huge-int", with_("train.learning_rate", 10**400), "train.learning_rate: expected a finite number"),
    ("learning-rate-zero", with_("train.learning_rate", 0), "train.learning_rate: must be positive"),
    ("grad-clip-bool", with_("train.grad_clip", True), "train.grad_clip: expected a number"),
    ("defaults-list", with_("defaults", [1]), "defaults: expected a mapping of model settings"),
    ("defaults-stray-key", with_("defaults.memory_sise", 3), "defaults: key 'memory_sise' is not a setting"),
    ("memories-string", with_("memories", "vae"), "memories: expected a mapping or a list of names, got str"),
    ("memories-settings-list", with_("memories", {"vae": [1]}), "memories.vae: expected a mapping of settings"),
    ("memories-listed-twice", with_("memories", ["vae", "vae"]), "memories: 'vae' is listed twice"),
    (
        "memories-list-of-mappings",
        with_("memories", ["vae", {"gpm": {}}]),
        "memories: a list of memories must hold names",
    ),
    ("memories-empty", with_("memories", {}), "memories: the suite names no memories"),
    ("memories-unknown", with_("memories", {"gmp": {}}), "unknown memory 'gmp' (did you mean 'gpm'?)"),
    ("memory-label-slash", with_("memories", {"a/b": {"memory": "vae"}}), "cannot be part of a directory name"),
    ("memory-label-dot", with_("memories", {"..": {"memory": "vae"}}), "cannot start with '.'"),
    ("memory-class-not-string", with_("memories", {"x": {"memory": 3}}), "memories.x.memory: expected a registry name"),
    ("code-size-zero", with_("memories.vae", {"code_size": 0}), "memories.vae.code_size: must be positive"),
    ("code-size-string", with_("memories.vae", {"code_size": "big"}), "memories.vae.code_size: expected an integer"),
    ("code-size-unallocatable", with_("memories.vae", {"code_size": 10**12}), "more than this machine's"),
    ("episode-longer-than-split", with_("memories.vae", {"episode_length": 100_000}), "larger than the split"),
    ("network-unknown", with_("memories.vae", {"network": "cnn"}), "memories.vae.network"),
    ("datasets-number", with_("datasets", 5), "datasets: expected a mapping or a list of names, got int"),
    ("datasets-unknown", with_("datasets", {"mnits": {}}), "unknown dataset 'mnits'"),
    ("dataset-valid-size-negative", with_("datasets.digits", {"valid_size": -1}), "datasets.digits.valid_size"),
    ("dataset-root-not-string", with_("datasets.digits", {"root": [1]}), "datasets.digits.root"),
    ("benchmarks-settings-string", with_("benchmarks", {"elbo": "x"}), "benchmarks.elbo: expected a mapping"),
    ("benchmarks-unknown", with_("benchmarks", {"elbow": {}}), "unknown benchmark 'elbow' (did you mean 'elbo'?)"),
    ("benchmark-unknown-key", with_("benchmarks.elbo.bogus", 1), "benchmarks.elbo: unknown key 'bogus'"),
    ("seeds-string", with_("seeds", "zero"), "seeds: expected a list of integers"),
    ("seeds-bool", with_("seeds", [True]), "seeds: expected a list of integers"),
    ("seeds-twice", with_("seeds", [0, 0]), "seeds: seed 0 is listed twice"),
    ("seeds-negative", with_("seeds", [-1]), "seeds: -1 is not in 0.."),
    ("seeds-too-large", with_("seeds", [2**64]), "is not in 0.."),
    ("data-root-number", with_("data_root", 5), "data_root: expected a string, got int"),
    ("data-root-list", with_("data_root", ["a"]), "data_root: expected a string, got list"),
    ("name-slash", with_("name", "a/b"), "name: 'a/b' cannot be part of a directory name"),
    ("name-control-character", with_("name", "a\tb"), "cannot be part of a directory name"),
    ("name-hidden", with_("name", ".hidden"), "cannot start with '.'"),
    ("name-too-long", with_("name", "x" * 300), "longer than 100 bytes"),
    ("name-number", with_("name", 12), "name: expected a non-empty suite name, got 12"),
    ("name-empty", with_("name", ""), "name: expected a non-empty suite name"),
    ("description-list", with_("description", [1]), "description: expected a string, got list"),
    ("note-mapping", with_("note", {"a": 1}), "note: expected a string, got dict"),
    ("resources-list", with_("resources", [1]), "resources: expected a mapping"),
    ("resources-unknown", with_("resources", {"lokal": {}}), "resources: unknown key 'lokal' (did you mean 'local'?)"),
    ("resources-local-string", with_("resources", {"local": "4"}), "resources.local: expected a mapping"),
    (
        "resources-workers-zero",
        with_("resources", {"local": {"workers": 0}}),
        "resources.local.workers: must be a positive",
    ),
    ("resources-workers-string", with_("resources", {"local": {"workers": "two"}}), "resources.local.workers"),
    ("resources-gpus-negative", with_("resources", {"local": {"gpus": [-1]}}), "resources.local.gpus"),
    ("resources-gpus-twice", with_("resources", {"local": {"gpus": [0, 0]}}), "a device is listed twice"),
    ("resources-slurm-time", with_("resources", {"slurm": {"time_min": 0}}), "resources.slurm.time_min"),
    ("resources-slurm-mem", with_("resources", {"slurm": {"mem_gb": -1}}), "resources.slurm.mem_gb"),
    ("resources-slurm-cpus", with_("resources", {"slurm": {"cpus_per_task": 0}}), "resources.slurm.cpus_per_task"),
    ("resources-slurm-unknown", with_("resources", {"slurm": {"qeue": "x"}}), "resources.slurm: unknown key 'qeue'"),
    (
        "resources-slurm-option",
        with_("resources", {"slurm": {"additional": {"Bad Key": 1}}}),
        "is not an sbatch option",
    ),
    ("yaml-invalid", "train: [1,\n", "invalid YAML"),
    ("yaml-tab-indent", "name: x\n\tmemories: {}\n", "invalid YAML"),
    ("yaml-duplicate-top-level", "name: a\nname: b\n", "duplicate key 'name' (first defined on line 1)"),
    ("yaml-duplicate-nested", "train:\n  steps: 1\n  steps: 2\n", "duplicate key 'steps'"),
    ("yaml-anchor", "defaults: &d {code_size: 4}\nmemories: {vae: *d}\n", "anchors and aliases"),
    ("yaml-unhashable-key", "? [1, 2]\n: x\n", "invalid YAML"),
    ("yaml-empty", "", "memories: the suite names no memories"),
]


@pytest.mark.parametrize(("suite", "expected"), [case[1:] for case in SUITE_CASES], ids=[c[0] for c in SUITE_CASES])
def test_bad_suite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suite: dict[str, Any] | str, expected: str
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(suite if isinstance(suite, str) else yaml.safe_dump(suite))
    expect_usage_error(capsys, tmp_path, run_argv(path, tmp_path), expected)


def test_alias_bomb_fails_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]" for i in range(20)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    expect_usage_error(capsys, tmp_path, run_argv(path, tmp_path), "anchors and aliases")
    assert time.perf_counter() - started < 5


def test_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "suite.yaml"
    path.write_bytes(b"name: caf\xe9\n")  # Latin-1
    expect_usage_error(capsys, tmp_path, run_argv(path, tmp_path), "not a UTF-8 text file (byte 9)")


def test_suite_path_that_is_a_directory_or_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect_usage_error(capsys, tmp_path, run_argv(tmp_path, tmp_path), "no such suite file")
    expect_usage_error(capsys, tmp_path, run_argv(tmp_path / "absent.yaml", tmp_path), "no such suite file")


SET_CASES = [
    ("set-invalid-yaml", "train.steps=[1,", "--set 'train.steps=[1,': value: invalid YAML"),
    ("set-alias", "train.steps=*a", "invalid YAML"),
    ("set-section-list", "train=[1, 2]", "train: expected a mapping of settings, got list"),
    ("set-inf", "train.weight_decay=.inf", "train.weight_decay: expected a finite number"),
    ("set-no-equals", "train.steps", "expected key=value"),
    ("set-empty-key", "train..steps=1", "empty key"),
    ("set-through-a-value", "train.steps.x=1", "'steps' is not a mapping"),
]


@pytest.mark.parametrize(("override", "expected"), [c[1:] for c in SET_CASES], ids=[c[0] for c in SET_CASES])
def test_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, expected: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(TINY))
    expect_usage_error(capsys, tmp_path, run_argv(path, tmp_path, "--set", override), expected)


# ---------------------------------------------------------------------------- --include and --out
INCLUDE_CASES = [
    ("raises", "raise RuntimeError('plugin is broken')\n", "importing it raised RuntimeError: plugin is broken"),
    ("syntax-error", "def broken(:\n", "syntax error in"),
    ("missing-import", "import no_such_module_xyz\n", "No module named 'no_such_module_xyz'"),
    ("exits", "import sys\nsys.exit(3)\n", "importing it raised SystemExit: 3"),
    (
        "duplicate-registration",
        "from memorybench.memories import register_memory\nfrom memorybench.memories.vae import VAE\n"
        "@register_memory('gpm')\nclass Fake(VAE):\n    pass\n",
        "already registered",
    ),
]


@pytest.mark.parametrize(("source", "expected"), [c[1:] for c in INCLUDE_CASES], ids=[c[0] for c in INCLUDE_CASES])
def test_bad_include_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, expected: str) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(source)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(TINY))
    err = expect_usage_error(capsys, tmp_path, ["--include", str(plugin), *run_argv(suite, tmp_path)], expected)
    assert f"--include {plugin}" in err


def test_include_of_a_missing_file_or_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(TINY))
    argv = run_argv(suite, tmp_path)
    expect_usage_error(capsys, tmp_path, ["--include", str(tmp_path / "nope.py"), *argv], "no such Python file")
    expect_usage_error(capsys, tmp_path, ["--include", "no_such.module", *argv], "No module named 'no_such'")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_output_directory_that_cannot_be_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(TINY))
    argv = ["run", str(suite), "--out", "/proc/memorybench/results"]
    expect_usage_error(capsys, tmp_path, argv, "--out /proc/memorybench/results: cannot create a directory in /proc")
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = ["run", str(suite), "--out", str(afile / "results")]
    expect_usage_error(capsys, tmp_path, argv, "is not a directory")


def test_report_and_status_of_missing_or_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect_usage_error(capsys, tmp_path, ["status", str(tmp_path / "none")], "no such results directory")
    expect_usage_error(capsys, tmp_path, ["report", str(tmp_path / "none")], "does not exist")
    expect_usage_error(capsys, tmp_path, ["report", str(tmp_path), "--format", "docx"], "--format: unknown format")


# ---------------------------------------------------------------------------- damaged data files
def amat_rows(count: int, value: str = "0") -> str:
    return "".join(" ".join([value] * 784) + "\n" for _ in range(count))


def binarized_mnist(root: Path, **files: str) -> None:
    folder = root / "binarized_mnist"
    folder.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (folder / f"binarized_mnist_{split}.amat").write_text(files.get(split, amat_rows(8)))


def png_bytes(text: bool = False) -> bytes:
    if text:
        return b"this is not a png"
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (105, 105), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def omniglot_folder(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / "omniglot" / "images_background" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def omniglot_zip(root: Path, files: dict[str, bytes], corrupt_member: bool = False) -> Path:
    folder = root / "omniglot"
    folder.mkdir(parents=True)
    path = folder / "images_background.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(f"images_background/{name}", data)
    if corrupt_member:  # flip bytes inside the first member's compressed data: the CRC no longer matches
        raw = bytearray(path.read_bytes())
        for offset in range(60, 90):
            raw[offset] ^= 0xFF
        path.write_bytes(bytes(raw))
    return path


def idx(shape: tuple[int, ...], fill: int = 0) -> bytes:
    header = bytes([0, 0, 8, len(shape)]) + b"".join(size.to_bytes(4, "big") for size in shape)
    count = 1
    for size in shape:
        count *= size
    return header + bytes([fill]) * count


def mnist_raw(root: Path, broken: str, data: bytes, gz: bool = False) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    good = {
        "train-images-idx3-ubyte": idx((20, 28, 28)),
        "train-labels-idx1-ubyte": idx((20,)),
        "t10k-images-idx3-ubyte": idx((10, 28, 28)),
        "t10k-labels-idx1-ubyte": idx((10,)),
    }
    for name, content in good.items():
        content = data if name == broken else content
        if gz:
            (raw / f"{name}.gz").write_bytes(content if name == broken else gzip.compress(content))
        else:
            (raw / name).write_bytes(content)


def cifar_files(root: Path) -> None:
    import pickle

    import torchvision.datasets

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    reader = torchvision.datasets.CIFAR10
    import numpy as np

    for name, _ in reader.train_list + reader.test_list:
        batch = {"data": np.zeros((2, 3072), dtype=np.uint8), "labels": [0, 1]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / reader.meta["filename"]).write_bytes(pickle.dumps({"label_names": ["a"] * 10}))
    (folder / "data_batch_3").write_bytes(b"\x80\x04 damaged")


DATA_CASES: list[tuple[str, str, Callable[[Path], None], str]] = [
    # (case id, dataset, make the damaged data under a root, expected text naming the file)
    (
        "amat-short-line-train",
        "binarized_mnist",
        lambda r: binarized_mnist(r, train=amat_rows(7) + " ".join(["0"] * 700) + "\n"),
        "binarized_mnist_train.amat: line 8 has 700 values, expected 784",
    ),
    (
        "amat-value-2-valid",
        "binarized_mnist",
        lambda r: binarized_mnist(r, valid=amat_rows(3) + amat_rows(1, "2") + amat_rows(4)),
        "binarized_mnist_valid.amat: line 4: value 2 is not 0 or 1",
    ),
    (
        "amat-grey-test",
        "binarized_mnist",
        lambda r: binarized_mnist(r, test=amat_rows(5, "0.5")),
        "binarized_mnist_test.amat: line 1: value 0.5 is not 0 or 1",
    ),
    (
        "amat-negative",
        "binarized_mnist",
        lambda r: binarized_mnist(r, train=amat_rows(8, "-1")),
        "binarized_mnist_train.amat: line 1: value -1 is not 0 or 1",
    ),
    (
        "amat-text",
        "binarized_mnist",
        lambda r: binarized_mnist(r, valid=amat_rows(2) + " ".join(["a"] * 784) + "\n"),
        "binarized_mnist_valid.amat: line 3: b'a' is not a number",
    ),
    (
        "amat-empty",
        "binarized_mnist",
        lambda r: binarized_mnist(r, valid=""),
        "binarized_mnist_valid.amat: no images (empty file)",
    ),
    (
        "amat-binary-garbage",
        "binarized_mnist",
        lambda r: binarized_mnist(r, test="\x00\x01\x02" * 600),
        "binarized_mnist_test.amat",
    ),
    (
        "amat-missing",
        "binarized_mnist",
        lambda r: (r / "binarized_mnist").mkdir(parents=True),
        "dataset 'binarized_mnist': no data in",
    ),
    (
        "zip-not-a-zip",
        "omniglot",
        lambda r: (
            (r / "omniglot").mkdir(parents=True),
            (r / "omniglot" / "images_background.zip").write_bytes(b"PK junk"),
        ),
        "images_background.zip: corrupted zip archive",
    ),
    (
        "zip-damaged-member",
        "omniglot",
        lambda r: omniglot_zip(r, {f"A/c{i}/{j}.png": png_bytes() for i in range(2) for j in range(3)}, True),
        "images_background.zip",
    ),
    (
        "zip-no-images",
        "omniglot",
        lambda r: omniglot_zip(r, {"A/c1/readme.txt": b"hi"}),
        "images_background.zip: no <alphabet>/<character>/*.png images in it",
    ),
    (
        "zip-png-not-an-image",
        "omniglot",
        lambda r: omniglot_zip(r, {"A/c1/1.png": png_bytes(), "A/c1/2.png": png_bytes(text=True)}),
        "images_background.zip:images_background/A/c1/2.png: not a readable PNG image",
    ),
    (
        "folder-empty",
        "omniglot",
        lambda r: (r / "omniglot" / "images_background").mkdir(parents=True),
        "images_background: no <alphabet>/<character>/*.png images in it",
    ),
    (
        "folder-only-text-files",
        "omniglot",
        lambda r: omniglot_folder(r, {"A/c1/notes.txt": b"x"}),
        "images_background: no <alphabet>/<character>/*.png images in it",
    ),
    (
        "folder-png-not-an-image",
        "omniglot",
        lambda r: omniglot_folder(r, {"A/c1/1.png": png_bytes(), "A/c2/1.png": png_bytes(text=True)}),
        "images_background/A/c2/1.png: not a readable PNG image",
    ),
    (
        "chardata-garbage",
        "omniglot",
        lambda r: ((r / "omniglot").mkdir(parents=True), (r / "omniglot" / "chardata.mat").write_bytes(b"x" * 300)),
        "chardata.mat: not a readable MATLAB file",
    ),
    (
        "chardata-wrong-keys",
        "omniglot",
        lambda r: _savemat(r, {"images": [[0.0]]}),
        "chardata.mat: not Burda's chardata.mat (no data, testdata key)",
    ),
    (
        "chardata-wrong-shape",
        "omniglot",
        lambda r: _savemat(r, {"data": [[0.0] * 5] * 3, "testdata": [[0.0]] * 784}),
        "chardata.mat: expected a [784, N] pixels",
    ),
    (
        "idx-truncated",
        "binarized_mnist_dynamic",
        lambda r: mnist_raw(r, "train-images-idx3-ubyte", idx((20, 28, 28))[:500]),
        "train-images-idx3-ubyte: 484 values for declared shape [20, 28, 28]",
    ),
    (
        "idx-wrong-magic",
        "binarized_mnist_dynamic",
        lambda r: mnist_raw(r, "t10k-labels-idx1-ubyte", b"\x01\x02\x03\x04rest"),
        "t10k-labels-idx1-ubyte: not an unsigned-byte IDX file",
    ),
    (
        "idx-too-short",
        "binarized_mnist_dynamic",
        lambda r: mnist_raw(r, "train-labels-idx1-ubyte", b"\x00"),
        "train-labels-idx1-ubyte: not an IDX file (1 bytes)",
    ),
    (
        "idx-label-count",
        "binarized_mnist_dynamic",
        lambda r: mnist_raw(r, "train-labels-idx1-ubyte", idx((19,))),
        "train-labels-idx1-ubyte: [19] labels for 20 images",
    ),
    (
        "idx-gz-damaged",
        "binarized_mnist_dynamic",
        lambda r: mnist_raw(r, "train-images-idx3-ubyte", b"\x1f\x8b\x08 not gzip", gz=True),
        "train-images-idx3-ubyte.gz: damaged gzip file",
    ),
    ("cifar-damaged-batch", "cifar10", cifar_files, "data_batch_3: damaged or not in torchvision's format"),
]


def _savemat(root: Path, contents: dict[str, Any]) -> None:
    import numpy as np
    from scipy.io import savemat

    (root / "omniglot").mkdir(parents=True)
    savemat(str(root / "omniglot" / "chardata.mat"), {k: np.asarray(v) for k, v in contents.items()})


@pytest.mark.parametrize(("dataset", "make", "expected"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_damaged_data_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dataset: str, make: Callable[[Path], None], expected: str
) -> None:
    root = tmp_path / "data"
    make(root)
    before = sorted(p for p in root.rglob("*"))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(with_("datasets", {dataset: {}})))
    err = expect_usage_error(capsys, tmp_path, run_argv(suite, tmp_path, "--data-root", str(root)), expected)
    assert str(root) in err  # the file is named with its path
    assert sorted(p for p in root.rglob("*")) == before  # nothing written into the data root either


def test_empty_validation_split_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(with_("datasets", {"omniglot": {"valid_fraction": 0.0}})))
    argv = run_argv(suite, tmp_path, "--data-root", str(shared_data))
    expect_usage_error(capsys, tmp_path, argv, "datasets.omniglot: the validation split has 0 images")


def test_every_case_count() -> None:
    """The issue asks for at least 60 bad-input cases across sections and formats."""
    cases = len(SUITE_CASES) + len(SET_CASES) + len(INCLUDE_CASES) + len(DATA_CASES) + 12  # + the single tests
    assert cases >= 60


def test_benchmark_settings_are_checked_against_the_images() -> None:
    """Settings that depend on the images (a denoising block larger than the image) are refused
    before running, through the config's ``check_image_shape`` hook."""
    import memorybench.benchmarks.common.datasets as datasets
    from memorybench.benchmarks.denoising import DenoisingConfig
    from memorybench.memories.configuration import ConfigError
    from memorybench.runners.checks import check_benchmarks_fit

    digits = {"digits": datasets.create("digits")}
    with pytest.raises(ConfigError, match=r"benchmarks.denoising: block 40 is larger .* \(dataset 'digits'\)"):
        check_benchmarks_fit({"denoising": DenoisingConfig(block=(6, 40))}, digits)
    check_benchmarks_fit({"denoising": DenoisingConfig(block=(6, 28))}, digits)
    check_benchmarks_fit({"elbo": object()}, digits)  # configs without the hook pass
