"""Dataset loaders on the real files in ../shared/data and on small files written in each format.

The torchvision formats (IDX, CIFAR pickles, the CelebA folder) and Burda's ``chardata.mat`` are
written here at a few images each; torchvision's checksums of the real files are swapped for
those of the written ones, so torchvision's own readers run unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets
from PIL import Image

from memorybench.benchmarks.common.datasets import DATASETS, DataMissingError, ImageDataset, ImageSplit, create

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"no shared test data at {SHARED_DATA}")

NEW_DATASETS = ("binarized_mnist_dynamic", "omniglot", "fashion_mnist", "cifar10", "cifar100", "celeba")


def load_all(dataset: ImageDataset) -> dict[str, ImageSplit]:
    return {split: dataset.split(split) for split in ("train", "valid", "test")}


def image_set(pixels: torch.Tensor | np.ndarray) -> set[bytes]:
    """Each image's bytes, to compare splits regardless of the holdout's order."""
    return {np.asarray(image).tobytes() for image in np.asarray(pixels)}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- registry and basics ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_DATASETS)
def test_registered_with_description(name: str) -> None:
    cls = DATASETS.get(name)
    assert cls.registry_name == name
    assert DATASETS.describe(name)
    assert cls.likelihood in ("bernoulli", "dmol")
    assert len(cls.image_shape) == 3


def test_digits_load_without_files(tmp_path: Path) -> None:
    dataset = create("digits", tmp_path)
    dataset.check_available()
    assert dataset.split("train").image_shape == (1, 28, 28)


def test_data_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORYBENCH_DATA", str(tmp_path))
    assert create("omniglot").directory == tmp_path / "omniglot"
    assert create("cifar10", tmp_path / "explicit").directory == tmp_path / "explicit" / "cifar-10-batches-py"


MISSING = [
    ("binarized_mnist", "binarized_mnist", "binarized_mnist_train.amat"),
    ("binarized_mnist_dynamic", "MNIST/raw", "train-images-idx3-ubyte"),
    ("fashion_mnist", "FashionMNIST/raw", "t10k-labels-idx1-ubyte"),
    ("cifar10", "cifar-10-batches-py", "data_batch_1"),
    ("cifar100", "cifar-100-python", "meta"),
    ("celeba", "celeba", "list_eval_partition.txt"),
    ("omniglot", "omniglot", "chardata.mat"),
]


@pytest.mark.parametrize(("name", "folder", "expected_file"), MISSING)
def test_missing_files_name_dataset_directory_and_files(
    tmp_path: Path, name: str, folder: str, expected_file: str
) -> None:
    dataset = create(name, tmp_path)
    for attempt in (dataset.check_available, lambda: dataset.split("train")):
        with pytest.raises(DataMissingError) as caught:
            attempt()
        message = str(caught.value)
        assert repr(name) in message
        assert str(tmp_path / folder) in message
        assert expected_file in message


# --- real files in ../shared/data ------------------------------------------------------------------------------------


@needs_shared_data
def test_real_binarized_mnist() -> None:
    splits = load_all(create("binarized_mnist", SHARED_DATA))
    assert {name: len(split) for name, split in splits.items()} == {"train": 50_000, "valid": 10_000, "test": 10_000}
    for split in splits.values():
        assert split.image_shape == (1, 28, 28)
        assert split.pixels.max() == 1 and split.pixels.min() == 0  # (unique() would sort 39M values)


@needs_shared_data
def test_real_omniglot_small_zip() -> None:
    splits = load_all(create("omniglot", SHARED_DATA))
    assert sum(len(split) for split in splits.values()) == 2_720
    assert len(splits["valid"]) == round(0.1 * (len(splits["train"]) + len(splits["valid"])))
    for split in splits.values():
        images = split.images(torch.arange(len(split)))
        assert images.shape[1:] == (1, 28, 28)
        assert set(images.unique().tolist()) == {0.0, 1.0}
        assert 0.02 < images.mean() < 0.5  # strokes are 1 and thin
    train_characters = set(splits["train"].labels.tolist()) | set(splits["valid"].labels.tolist())
    assert not train_characters & set(splits["test"].labels.tolist())


@needs_shared_data
def test_real_omniglot_dynamic_binarization_is_reproducible() -> None:
    dataset = create("omniglot", SHARED_DATA, binarization="dynamic")
    train = dataset.split("train")
    assert train.dynamic_binarization
    indices = torch.arange(64).reshape(8, 8)
    first, again = (train.images(indices, torch.Generator().manual_seed(3)) for _ in range(2))
    assert first.shape == (8, 8, 1, 28, 28)
    assert torch.equal(first, again)
    assert not torch.equal(first, train.images(indices, torch.Generator().manual_seed(4)))
    assert set(first.unique().tolist()) == {0.0, 1.0}
    fresh = create("omniglot", SHARED_DATA, binarization="dynamic")
    for split in ("valid", "test"):
        assert not dataset.split(split).dynamic_binarization
        assert torch.equal(dataset.split(split).pixels, fresh.split(split).pixels)


# --- Omniglot: chardata.mat and torchvision-layout images written here -----------------------------------------------


def write_chardata(directory: Path, n_train: int = 20) -> None:
    """Burda's layout: ``[784, N]`` grey levels, pixel (r, c) of image n at column n, row r + 28 c."""
    rng = np.random.default_rng(0)
    data = (rng.random((784, n_train)) < 0.2).astype(np.float64)
    testdata = np.zeros((784, 3))
    testdata[[0 + 28 * c for c in range(28)], 0] = 1.0  # test image 0: the top row (r = 0) inked
    testdata[5 + 28 * 2, 1] = 0.51  # test image 1: pixel (5, 2) just above the threshold ...
    testdata[2 + 28 * 5, 1] = 0.49  # ... and pixel (2, 5) just below it
    target = np.eye(4)[:, rng.integers(0, 4, n_train)]  # one-hot [alphabets, N]
    testtarget = np.eye(4)[:, [3, 1, 2]]
    directory.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        directory / "chardata.mat", {"data": data, "target": target, "testdata": testdata, "testtarget": testtarget}
    )


def test_chardata_fortran_order_and_threshold(tmp_path: Path) -> None:
    write_chardata(tmp_path / "omniglot")
    splits = load_all(create("omniglot", tmp_path))
    assert [len(splits[name]) for name in ("train", "valid", "test")] == [18, 2, 3]
    test = splits["test"].pixels[:, 0]
    assert test[0, 0].tolist() == [1] * 28 and test[0, 1:].sum() == 0  # a row, not a column
    assert test[1, 5, 2] == 1 and test[1, 2, 5] == 0 and test[1].sum() == 1
    assert splits["test"].labels.tolist() == [3, 1, 2]
    transposed = create("omniglot", tmp_path, reshape_order="C").split("test").pixels[:, 0]
    assert torch.equal(transposed, test.transpose(1, 2))


def test_chardata_dynamic_binarization(tmp_path: Path) -> None:
    write_chardata(tmp_path / "omniglot")
    dataset = create("omniglot", tmp_path, binarization="dynamic", valid_size=5)
    train, valid, test = dataset.split("train"), dataset.split("valid"), dataset.split("test")
    assert (len(train), len(valid)) == (15, 5)
    assert train.dynamic_binarization and set(train.pixels.unique().tolist()) <= {0, 255}
    assert not test.dynamic_binarization and set(test.pixels.unique().tolist()) <= {0, 1}
    assert test.pixels[0, 0, 0].sum() == 28  # probability-1 pixels stay 1


def write_character_images(root: Path, name: str, alphabets: int = 2, characters: int = 3, drawings: int = 2) -> Path:
    """A torchvision-layout folder ``name/<alphabet>/<character>/*.png`` of 105×105 black-on-white bars."""
    for a in range(alphabets):
        for c in range(characters):
            folder = root / name / f"Alphabet{a}" / f"character{c + 1:02d}"
            folder.mkdir(parents=True)
            for d in range(drawings):
                page = np.ones((105, 105), dtype=bool)
                page[40:60, 10 + 10 * c : 95] = False  # a thick horizontal bar, position per character
                Image.fromarray(page).save(folder / f"{a}{c}_{d + 1:02d}.png")
    return root / name


def zip_folder(folder: Path) -> Path:
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*")):
            out.write(path, path.relative_to(folder.parent).as_posix())
    shutil.rmtree(folder)
    return archive


def test_omniglot_images_folder_and_zip_agree(tmp_path: Path) -> None:
    folder_root, zip_root = tmp_path / "folder", tmp_path / "zip"
    write_character_images(folder_root / "omniglot", "images_background_small1")
    zip_folder(write_character_images(zip_root / "omniglot", "images_background_small1"))
    from_folder, from_zip = load_all(create("omniglot", folder_root)), load_all(create("omniglot", zip_root))
    for split in ("train", "valid", "test"):
        assert torch.equal(from_folder[split].pixels, from_zip[split].pixels)
    # 2 alphabets × 3 characters: one character per alphabet held out, 2 drawings each.
    assert [len(from_zip[name]) for name in ("train", "valid", "test")] == [7, 1, 4]
    image = from_zip["test"].pixels[0, 0]
    assert image[13, 20] == 1 and image[2, 2] == 0 and image[25, 20] == 0  # bar inked, background 0


def test_omniglot_evaluation_set_is_test_and_chardata_preferred(tmp_path: Path) -> None:
    directory = tmp_path / "omniglot"
    write_character_images(directory, "images_background")
    zip_folder(write_character_images(directory, "images_evaluation", alphabets=1, characters=2))
    splits = load_all(create("omniglot", tmp_path, valid_size=2))
    assert [len(splits[name]) for name in ("train", "valid", "test")] == [10, 2, 4]
    assert not set(splits["test"].labels.tolist()) & set(splits["train"].labels.tolist())
    write_chardata(directory)
    assert len(create("omniglot", tmp_path).split("test")) == 3
    assert len(create("omniglot", tmp_path, source="images").split("test")) == 4


# --- MNIST and FashionMNIST: IDX files, plain and gzip ---------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(raw: Path, plain: bool, compressed: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 30, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 12, dtype=np.uint8),
    }
    raw.mkdir(parents=True)
    for name, array in arrays.items():
        if plain:
            (raw / name).write_bytes(idx_bytes(array))
        if compressed:
            (raw / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


@pytest.mark.parametrize("files", ["plain", "gz", "plain+gz"])
@pytest.mark.parametrize(("name", "folder"), [("fashion_mnist", "FashionMNIST"), ("binarized_mnist_dynamic", "MNIST")])
def test_idx_files(tmp_path: Path, name: str, folder: str, files: str) -> None:
    written = write_idx_set(tmp_path / folder / "raw", plain="plain" in files, compressed="gz" in files)
    splits = load_all(create(name, tmp_path, valid_size=10))
    assert [len(splits[split]) for split in ("train", "valid", "test")] == [20, 10, 12]
    assert image_set(splits["train"].pixels[:, 0]) < image_set(written["train-images-idx3-ubyte"])
    if name == "fashion_mnist":
        train_and_valid = torch.cat([splits["train"].pixels, splits["valid"].pixels])[:, 0]
        assert image_set(train_and_valid) == image_set(written["train-images-idx3-ubyte"])
        assert torch.equal(splits["test"].pixels[:, 0], torch.from_numpy(written["t10k-images-idx3-ubyte"]))
        assert splits["test"].labels.tolist() == written["t10k-labels-idx1-ubyte"].tolist()
        assert not splits["train"].binary
    else:
        assert splits["train"].dynamic_binarization
        for split in ("valid", "test"):  # binarized once
            assert set(splits[split].pixels.unique().tolist()) == {0, 1}


def test_mnist_dynamic_binarization_reproducible(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "MNIST" / "raw", plain=True, compressed=False)
    dataset = create("binarized_mnist_dynamic", tmp_path, valid_size=10)
    train = dataset.split("train")
    indices = torch.arange(20)
    first, again = (train.images(indices, torch.Generator().manual_seed(0)) for _ in range(2))
    assert torch.equal(first, again) and set(first.unique().tolist()) == {0.0, 1.0}
    fresh = create("binarized_mnist_dynamic", tmp_path, valid_size=10)
    assert torch.equal(dataset.split("test").pixels, fresh.split("test").pixels)
    assert dataset.likelihood == "bernoulli"


# --- CIFAR10 and CIFAR100: python pickles ----------------------------------------------------------------------------


def write_cifar(root: Path, reader: type, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's pickled batches (``data`` rows: 1024 R, 1024 G, 1024 B values, row-major) and meta file."""
    rng = np.random.default_rng(2)
    folder = root / reader.base_folder
    folder.mkdir(parents=True)
    label_key = "labels" if reader is torchvision.datasets.CIFAR10 else "fine_labels"
    batches: dict[str, np.ndarray] = {}
    for name, _ in reader.train_list + reader.test_list:
        rows = rng.integers(0, 256, (4 if name.startswith("data_batch") else 20, 3072), dtype=np.uint8)
        entry = {"batch_label": name, "data": rows, label_key: rng.integers(0, 10, len(rows)).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        batches[name] = rows
    (folder / reader.meta["filename"]).write_bytes(pickle.dumps({reader.meta["key"]: [f"class{i}" for i in range(10)]}))
    monkeypatch.setattr(reader, "train_list", [[name, md5(folder / name)] for name, _ in reader.train_list])
    monkeypatch.setattr(reader, "test_list", [[name, md5(folder / name)] for name, _ in reader.test_list])
    monkeypatch.setattr(reader, "meta", {**reader.meta, "md5": md5(folder / reader.meta["filename"])})
    train = np.concatenate([batches[name] for name, _ in reader.train_list])
    test = np.concatenate([batches[name] for name, _ in reader.test_list])
    return train.reshape(-1, 3, 32, 32), test.reshape(-1, 3, 32, 32)


@pytest.mark.parametrize(
    ("name", "reader"), [("cifar10", torchvision.datasets.CIFAR10), ("cifar100", torchvision.datasets.CIFAR100)]
)
def test_cifar_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, reader: type) -> None:
    train, test = write_cifar(tmp_path, reader, monkeypatch)
    dataset = create(name, tmp_path, valid_size=5)
    splits = load_all(dataset)
    assert [len(splits[split]) for split in ("train", "valid", "test")] == [len(train) - 5, 5, 20]
    assert torch.equal(splits["test"].pixels, torch.from_numpy(test))  # channels first, rows unscrambled
    assert image_set(torch.cat([splits["train"].pixels, splits["valid"].pixels])) == image_set(train)
    assert dataset.image_shape == splits["test"].image_shape == (3, 32, 32)
    assert dataset.likelihood == "dmol"


def test_cifar_failed_checksum_is_data_missing_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path, torchvision.datasets.CIFAR10, monkeypatch)
    monkeypatch.undo()  # the real checksums: the written files now look corrupt to torchvision
    with pytest.raises(DataMissingError, match="torchvision"):
        create("cifar10", tmp_path).split("test")


# --- CelebA: aligned JPEG folder and the partition/attribute files ---------------------------------------------------

CELEBA_COLOURS = [
    (200, 40, 40),
    (40, 200, 40),
    (40, 40, 200),
    (200, 200, 40),
    (40, 200, 200),
    (120, 120, 120),
    (9, 9, 9),
]
CELEBA_PARTITION = [0, 0, 0, 1, 1, 2, 2]  # torchvision cannot read a split of a single image


def write_celeba(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``celeba/img_align_celeba/*.jpg`` (178×218, black outside the 148×148 centre) and the five text files."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(CELEBA_COLOURS))]
    for name, colour in zip(names, CELEBA_COLOURS):
        page = np.zeros((218, 178, 3), dtype=np.uint8)
        page[35:183, 15:163] = colour  # the centre crop: rows 35..182, columns 15..162
        Image.fromarray(page).save(folder / "img_align_celeba" / name, quality=95)
    count = f"{len(names)}\n"
    texts = {
        "list_eval_partition.txt": "".join(f"{n} {p}\n" for n, p in zip(names, CELEBA_PARTITION)),
        "identity_CelebA.txt": "".join(f"{n} {100 + i}\n" for i, n in enumerate(names)),
        "list_attr_celeba.txt": count
        + " ".join(f"Attribute{k}" for k in range(40))
        + "\n"
        + "".join(f"{n} " + " ".join(["1", "-1"] * 20) + "\n" for n in names),
        "list_bbox_celeba.txt": count
        + "image_id x_1 y_1 width height\n"
        + "".join(f"{n} 95 71 226 313\n" for n in names),
        "list_landmarks_align_celeba.txt": count
        + " ".join(f"landmark{k}" for k in range(10))
        + "\n"
        + "".join(f"{n} " + " ".join(["70", "110"] * 5) + "\n" for n in names),
    }
    for name, text in texts.items():
        (folder / name).write_text(text)
    reader = torchvision.datasets.CelebA
    patched = [
        (file_id, md5(folder / name) if name in texts else digest, name) for file_id, digest, name in reader.file_list
    ]
    monkeypatch.setattr(reader, "file_list", patched)


def test_celeba_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_celeba(tmp_path, monkeypatch)
    dataset = create("celeba", tmp_path, image_size=16)
    splits = load_all(dataset)
    assert dataset.image_shape == (3, 16, 16) and dataset.likelihood == "dmol"
    assert [len(splits[split]) for split in ("train", "valid", "test")] == [3, 2, 2]
    images = torch.cat([splits[split].pixels for split in ("train", "valid", "test")])
    assert images.shape == (7, 3, 16, 16)
    expected = torch.tensor(CELEBA_COLOURS, dtype=torch.float32)[:, :, None, None]
    assert (images.float() - expected).abs().max() < 30  # the black border is cropped away
    assert splits["valid"].labels.tolist() == [103, 104]
    assert len(create("celeba", tmp_path, image_size=16, max_images=2).split("train")) == 2
