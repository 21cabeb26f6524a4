"""Fuzzing with hypothesis: the option parser, the ``--config`` YAML loader, the image loader and the
checkpoint loaders get random and mutated input, and may only answer with their documented error.

The contracts (from ``options/parse.py``, ``util/errors.py``, ``util/image.py``, ``util/fileio.py``):

- ``parse_options(argv)`` returns ``Options``, or ends like argparse: ``SystemExit(2)`` after
  printing a usage line and ONE ``<prog>: error: ...`` line on stderr (train.py and test.py exit
  with it). That holds for bad flags and values and for a bad ``--config`` file alike (not UTF-8,
  not YAML, not a mapping, unknown or non-text keys, values of the wrong type). ``--help`` is
  never drawn (it exits 0 by design).
- ``util.image.load_image(path)`` returns an RGB (or, asked for, greyscale) PIL image, or raises
  ``UserError`` naming the file; so does a dataset's ``__getitem__``, which decodes with it. No
  PIL exception type leaks, and no input hangs (each call must end within ``HANG_S``).
- ``engine.checkpoint.load_checkpoint``, ``util.fileio.load_torch_file`` and test.py's path to the
  networks (``load_inference_checkpoint`` then ``BaseModel.load_networks``) return a state, or
  raise ``UserError``; a checkpoint mutated where it does not matter (inside a tensor's bytes)
  loads, which is fine.

``derandomize=True`` makes every run draw the same examples (CI is reproducible); the example
counts are below, per target (``EXAMPLES``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import signal
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.checkpoint import load_checkpoint, load_inference_checkpoint, save_checkpoint
from models import MODELS, create_model
from options import parse_options
from options.parse import build_parser
from tests.conftest import REPO_ROOT, write_images
from util.errors import UserError
from util.fileio import load_torch_file
from util.image import load_image

HANG_S = 20  # one decode or load taking longer than this is a hang (they take milliseconds)

EXAMPLES = {
    "argv_train": 120,
    "argv_test": 80,
    "train_dry_run": 60,
    "yaml_text": 80,
    "yaml_bytes": 40,
    "yaml_mutated_config": 100,
    "yaml_mutated_bytes": 60,
    "image_random_bytes": 60,
    "image_mutated_png": 150,
    "image_mutated_jpeg": 150,
    "image_mutated_other": 300,
    "dataset_mutated_image": 40,
    "checkpoint_random_bytes": 40,
    "checkpoint_mutated": 150,
    "torch_file_mutated": 60,
    "test_networks_mutated": 100,
    "resume_mutated": 100,
}


def fuzz(target: str) -> Callable:
    return settings(
        max_examples=EXAMPLES[target],
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@contextlib.contextmanager
def no_hang(what: str) -> Iterator[None]:
    """Fail (not wait forever) when the block runs longer than ``HANG_S``."""

    def alarm(signum: int, frame: object) -> None:
        raise AssertionError(f"{what} took more than {HANG_S} s: a hang")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---- byte mutations ----------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, original: bytes, hot: tuple[int, int] | None = None) -> bytes:
    """``original`` with 1-6 edits: bit flips, byte sets, truncation, inserted random bytes,
    deleted and repeated slices. ``hot``: a (start, end) range where half the edits land (a
    checkpoint's pickle and zip directory: most of its bytes are tensor data, where a flip only
    changes a number)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        if hot is not None and draw(st.booleans()):
            i = draw(st.integers(min(hot[0], len(data) - 1), min(hot[1], len(data)) - 1))
        else:
            i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "repeat"]))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=32))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 64))]
        else:
            data[i:i] = data[i : i + draw(st.integers(1, 64))]
    return bytes(data)


# ---- the option parser -------------------------------------------------------------------------


@functools.cache
def flag_names(is_train: bool) -> list[str]:
    """Every flag of train.py or test.py, over every registered model (their hooks add flags)."""
    names = set()
    for model in MODELS.names():
        parser, _ = build_parser(is_train, model, None)
        names |= {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
    return sorted(names)


VALUES = ["0", "1", "-1", "2", "8", "32", "1e9", "-1e9", "0.5", "nan", "inf", "-inf", "", " ", "true", "all"]
VALUES += ["latest", "resnet_9blocks", "unet_256", "basic", "instance", "batch", "none", "AtoB", "BtoA", "test"]
VALUES += ["cycle_gan", "pix2pix", "aligned", "single", "fid,kid", "0,1", "-1,0", "{name}", "../x", "/", "\\", "=x"]


def argv_strategy(flags: list[str]) -> st.SearchStrategy[list[str]]:
    token = st.one_of(
        st.sampled_from(flags),
        st.sampled_from(flags).map(lambda flag: flag + "="),
        st.sampled_from(VALUES),
        st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=12),
        st.sampled_from(["-", "--", "-x", "--no_such_flag", "--continue", "--name=a", "--help_me"]),
    )
    return st.lists(token, max_size=10)


def check_parse(argv: list[str], is_train: bool) -> None:
    """``parse_options`` gives Options or SystemExit(2) with one error line, nothing else."""
    prog = "train.py" if is_train else "test.py"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), no_hang(f"parsing {argv}"):
        try:
            opt = parse_options(argv, is_train=is_train, prog=prog)
        except SystemExit as e:
            lines = err.getvalue().splitlines()
            assert e.code == 2, (argv, e.code, err.getvalue())
            assert len(lines) == 2 and lines[0].startswith("usage:"), (argv, lines)
            assert lines[1].startswith(f"{prog}: error: "), (argv, lines)
            return
    assert opt.is_train is is_train and opt.name  # a resolved run


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_data")
    for folder in ("trainA", "trainB", "testA", "testB"):
        write_images(root / folder, 1, seed=len(folder))
    return root


def with_base(argv: list[str], root: Path, use_base: bool) -> list[str]:
    """Half the examples start from a valid command (so the junk reaches the later checks), the
    other half are junk alone."""
    return (
        ["--dataroot", str(root), "--gpu_ids", "-1", "--checkpoints_dir", str(root / "ck"), *argv] if use_base else argv
    )


@fuzz("argv_train")
@given(argv=argv_strategy(flag_names(True)), use_base=st.booleans())
def test_train_parser_gives_options_or_one_error_line(tiny_root: Path, argv: list[str], use_base: bool) -> None:
    check_parse(with_base(argv, tiny_root, use_base), is_train=True)


@fuzz("argv_test")
@given(argv=argv_strategy(flag_names(False)), use_base=st.booleans())
def test_test_parser_gives_options_or_one_error_line(tiny_root: Path, argv: list[str], use_base: bool) -> None:
    check_parse(with_base(argv, tiny_root, use_base), is_train=False)


# Flags left out of the entry-point fuzz: they start other processes (--nproc_per_node, several
# --gpu_ids), or choose a model that may fetch pretrained weights, or read other files (--config).
NOT_IN_DRY_RUN = {"--nproc_per_node", "--gpu_ids", "--model", "--config", "--help"}


@fuzz("train_dry_run")
@given(argv=argv_strategy([f for f in flag_names(True) if f not in NOT_IN_DRY_RUN]))
def test_train_py_with_random_flags_starts_or_exits_2(tiny_root: Path, argv: list[str]) -> None:
    """Past the parser: ``train.main(... --dry_run)`` builds the run's data and model from the
    options, and returns 0, or 2 after one error line (``UserError``), or exits 2 like argparse.
    (A --seed above 2**63 passed the parser and was a traceback in torch.manual_seed.)"""
    import train

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), no_hang(f"train.py {argv}"):
        try:
            code = train.main([*with_base(argv, tiny_root, True), "--dry_run"])
        except SystemExit as e:
            code = e.code
    assert code in (0, 2), (argv, code, err.getvalue())
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert [line for line in err.getvalue().splitlines() if "error" in line][-1].startswith("train.py: error: ")


@pytest.mark.parametrize("seed", [str(2**63), str(10**23), "-1"])
def test_a_seed_torch_cannot_take_is_a_one_line_error(tiny_root: Path, seed: str, capsys) -> None:
    import train

    with pytest.raises(SystemExit) as exc:
        train.main([*with_base(["--seed", seed], tiny_root, True), "--dry_run"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"train.py: error: --seed must be in [0, 2**63), got {seed}"


# ---- the --config YAML loader ------------------------------------------------------------------


def check_config(root: Path, content: bytes, is_train: bool = True) -> None:
    config = root / "fuzz.yaml"
    config.write_bytes(content)
    check_parse(with_base(["--config", str(config)], root, True), is_train)


VALID_CONFIG = yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text())

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(VALUES),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict:
    """The demo config with keys replaced, deleted and added (option names and junk, text or not)."""
    config = dict(VALID_CONFIG)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "replace" and config:
            config[draw(st.sampled_from(list(config)))] = draw(yaml_values)
        elif op == "delete" and config:
            config.pop(draw(st.sampled_from(list(config))))
        else:
            key = draw(
                st.one_of(
                    st.sampled_from([f.lstrip("-") for f in flag_names(True)]),
                    st.text(max_size=8),
                    st.integers(),
                    st.none(),
                    st.booleans(),
                )
            )
            config[key] = draw(yaml_values)
    return config


@fuzz("yaml_text")
@given(text=st.text(max_size=200))
def test_config_of_random_text(tiny_root: Path, text: str) -> None:
    check_config(tiny_root, text.encode("utf-8", "surrogatepass"))


@fuzz("yaml_bytes")
@given(content=st.binary(max_size=200))
def test_config_of_random_bytes(tiny_root: Path, content: bytes) -> None:
    check_config(tiny_root, content)


@fuzz("yaml_mutated_config")
@given(config=mutated_configs(), is_train=st.booleans())
def test_config_with_mutated_keys_and_values(tiny_root: Path, config: dict, is_train: bool) -> None:
    config.pop("dataroot", None)  # the command line's (a real folder), so the values are checked
    check_config(
        tiny_root,
        yaml.safe_dump(config, allow_unicode=True, sort_keys=False).encode("utf-8", "surrogatepass"),
        is_train,
    )


DEMO_YAML = (REPO_ROOT / "configs" / "demo.yaml").read_bytes()


@fuzz("yaml_mutated_bytes")
@given(content=mutated(DEMO_YAML))
def test_config_of_mutated_bytes(tiny_root: Path, content: bytes) -> None:
    check_config(tiny_root, content)


def test_deeply_nested_and_non_text_configs_are_one_line_errors(tiny_root: Path) -> None:
    """What the fuzzers above found first, kept as plain examples."""
    for content in [b"[" * 600 + b"]" * 600, b"1: 2\n", b"~: x\n", b"ngf: \xff\n", b"dataset_mode: [a]\n"]:
        check_config(tiny_root, content)
        with pytest.raises(SystemExit):
            with contextlib.redirect_stderr(io.StringIO()):
                parse_options(with_base(["--config", str(tiny_root / "fuzz.yaml")], tiny_root, True))


# ---- the image loader --------------------------------------------------------------------------


def check_image(path: Path, content: bytes, channels: int = 3) -> None:
    path.write_bytes(content)
    with no_hang(f"decoding {len(content)} bytes"):
        try:
            image = load_image(path, channels)
        except UserError as e:
            assert str(path) in str(e) and "\n" not in str(e).strip()
            return
    assert isinstance(image, Image.Image) and image.mode == ("RGB" if channels == 3 else "L")
    assert image.width > 0 and image.height > 0


PNG = io.BytesIO()
Image.new("RGB", (24, 16), (10, 200, 30)).save(PNG, format="PNG")
JPEG = io.BytesIO()
Image.new("RGB", (24, 16), (200, 10, 30)).save(JPEG, format="JPEG")


def encoded(mode: str, fmt: str, **params: object) -> bytes:
    """A small image of ``mode`` encoded as ``fmt``: the kinds of file that take other decoder
    paths (16-bit, palette with transparency, CMYK, alpha, EXIF orientation)."""
    image = Image.linear_gradient("L").resize((20, 12)).convert(mode) if mode != "I;16" else None
    if mode == "I;16":
        image = Image.linear_gradient("L").resize((20, 12)).convert("I").point(lambda v: v * 256).convert("I;16")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    return encoded("RGB", "JPEG", exif=exif.tobytes())


OTHER_FILES = {
    ".png": [encoded("I;16", "PNG"), encoded("P", "PNG", transparency=0), encoded("LA", "PNG")],
    ".jpg": [encoded("CMYK", "JPEG"), exif_rotated_jpeg(), encoded("RGB", "JPEG", progressive=True)],
    ".tif": [encoded("RGB", "TIFF"), encoded("I;16", "TIFF"), encoded("RGB", "TIFF", compression="tiff_lzw")],
    ".bmp": [encoded("RGB", "BMP"), encoded("P", "BMP")],
    ".webp": [encoded("RGBA", "WEBP")],
    ".ppm": [encoded("RGB", "PPM")],
}


@st.composite
def mutated_other_files(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from(sorted(OTHER_FILES)))
    original = draw(st.sampled_from(OTHER_FILES[suffix]))
    return suffix, draw(mutated(original, hot=(0, min(len(original), 256))))


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_images")


@fuzz("image_random_bytes")
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".png", ".jpg", ".bmp", ".tif", ".webp", ".ppm"]))
def test_image_loader_on_random_bytes(image_dir: Path, content: bytes, suffix: str) -> None:
    check_image(image_dir / f"random{suffix}", content)


@fuzz("image_mutated_png")
@given(content=mutated(PNG.getvalue(), hot=(0, 64)), channels=st.sampled_from([1, 3]))
def test_image_loader_on_mutated_png(image_dir: Path, content: bytes, channels: int) -> None:
    check_image(image_dir / "mutated.png", content, channels)


@fuzz("image_mutated_jpeg")
@given(content=mutated(JPEG.getvalue(), hot=(0, 400)), channels=st.sampled_from([1, 3]))
def test_image_loader_on_mutated_jpeg(image_dir: Path, content: bytes, channels: int) -> None:
    check_image(image_dir / "mutated.jpg", content, channels)


@fuzz("image_mutated_other")
@given(file=mutated_other_files(), channels=st.sampled_from([1, 3]))
def test_image_loader_on_mutated_tiff_bmp_webp_ppm_16bit_palette_cmyk_exif(
    image_dir: Path, file: tuple[str, bytes], channels: int
) -> None:
    suffix, content = file
    check_image(image_dir / f"mutated_other{suffix}", content, channels)


@pytest.fixture(scope="module")
def fuzzed_dataset(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """A test-time single-folder dataset of one image file, whose bytes each example replaces."""
    from data import create_dataset

    root = tmp_path_factory.mktemp("fuzz_single")
    write_images(root / "testA", 1, seed=1)
    opt = parse_options(["--dataroot", str(root), "--model", "test", "--gpu_ids", "-1"], is_train=False)
    return create_dataset(opt, "test", "A"), root / "testA" / "0000.png"


@fuzz("dataset_mutated_image")
@given(content=mutated(PNG.getvalue(), hot=(0, 64)))
def test_dataset_item_of_a_mutated_file(fuzzed_dataset, content: bytes) -> None:
    dataset, path = fuzzed_dataset
    path.write_bytes(content)
    with no_hang("a dataset item"):
        try:
            item = dataset[0]
        except UserError as e:
            assert str(path) in str(e)
            return
    assert item["A"].dim() == 3 and item["A"].shape[0] == 3 and torch.isfinite(item["A"]).all()


# ---- the checkpoint loaders --------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A tiny run's ``latest.pth`` (the initial weights, ``--max_iters 0``) and its bytes."""
    import train

    checkpoints = tmp_path_factory.mktemp("fuzz_ck")
    args = ["--dataroot", str(tiny_root), "--name", "run", "--checkpoints_dir", str(checkpoints)]
    args += ["--ngf", "4", "--ndf", "4", "--netG", "resnet_6blocks", "--load_size", "32", "--crop_size", "32"]
    args += ["--num_threads", "0", "--display_id", "0", "--gpu_ids", "-1", "--max_iters", "0", "--seed", "1"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert train.main(args) == 0
    path = checkpoints / "run" / "latest.pth"
    return path, path.read_bytes()


def structure(content: bytes) -> tuple[int, int]:
    """Where a torch.save file's pickle (the part that names and shapes everything) starts and its
    zip directory ends: mutations land there half the time."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    return info.header_offset, info.header_offset + 64 + info.compress_size


def small_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save({"format_version": 1, "epoch": 2, "nets": {"G": {"w": torch.arange(6.0).reshape(2, 3)}}}, buffer)
    return buffer.getvalue()


SMALL = small_checkpoint()


def check_loader(load: Callable[[Path], object], path: Path, content: bytes) -> object | None:
    path.write_bytes(content)
    with no_hang(f"loading {len(content)} bytes"):
        try:
            return load(path)
        except UserError as e:
            assert "\n" not in str(e).strip(), str(e)
            return None


@fuzz("checkpoint_random_bytes")
@given(content=st.one_of(st.binary(max_size=300), st.binary(max_size=40).map(lambda b: b"PK\x03\x04" + b)))
def test_checkpoint_loader_on_random_bytes(image_dir: Path, content: bytes) -> None:
    state = check_loader(load_checkpoint, image_dir / "random.pth", content)
    assert state is None  # random bytes are never a checkpoint


@fuzz("checkpoint_mutated")
@given(content=mutated(SMALL, hot=structure(SMALL)))
def test_checkpoint_loader_on_mutated_checkpoints(image_dir: Path, content: bytes) -> None:
    state = check_loader(load_checkpoint, image_dir / "mutated.pth", content)
    assert state is None or (isinstance(state, dict) and "format_version" in state)


@fuzz("torch_file_mutated")
@given(content=mutated(SMALL, hot=structure(SMALL)))
def test_torch_file_loader_on_mutated_files(image_dir: Path, content: bytes) -> None:
    check_loader(lambda p: load_torch_file(p, "network"), image_dir / "mutated_net.pth", content)


@pytest.fixture(scope="module")
def test_model(trained_run: tuple[Path, bytes], tiny_root: Path):
    """test.py's model for the trained run, built as test.py builds it."""
    run_dir = trained_run[0].parent
    argv = ["--dataroot", str(tiny_root), "--name", "run", "--checkpoints_dir", str(run_dir.parent)]
    opt = parse_options([*argv, "--gpu_ids", "-1"], is_train=False)
    return create_model(opt, torch.device("cpu"))


@fuzz("test_networks_mutated")
@given(data=st.data())
def test_test_py_network_loading_on_mutated_checkpoints(trained_run, test_model, data: st.DataObject) -> None:
    path, original = trained_run
    content = data.draw(mutated(original, hot=structure(original)))
    keys = [test_model.checkpoint_key(n) for n in test_model.nets]

    def load(p: Path) -> None:
        checkpoint = load_inference_checkpoint(p.parent, "latest", keys)
        test_model.load_networks(checkpoint.nets, checkpoint.source)

    try:
        check_loader(load, path, content)
    finally:
        path.write_bytes(original)


@pytest.fixture(scope="module")
def resume_options(trained_run: tuple[Path, bytes], tiny_root: Path):
    run_dir = trained_run[0].parent
    argv = ["--dataroot", str(tiny_root), "--name", "run", "--checkpoints_dir", str(run_dir.parent), "--gpu_ids", "-1"]
    return parse_options([*argv, "--num_threads", "0", "--display_id", "0", "--continue_train"], is_train=True)


@fuzz("resume_mutated")
@given(data=st.data())
def test_continue_train_from_a_mutated_latest(trained_run, resume_options, data: st.DataObject) -> None:
    """``--continue_train`` as train.py does it (``Run``, the model, ``Run.start``) from a damaged
    ``latest.pth``: it resumes, or stops with a ``UserError`` (a damaged file of one's own run:
    a disk error, a copy cut short)."""
    from engine.run import Run
    from engine.tracking import LossTracker

    path, original = trained_run
    content = data.draw(mutated(original, hot=structure(original)))

    def resume(p: Path) -> None:
        run = Run(resume_options)
        opt = run.options(resume_options)
        model = create_model(opt, torch.device("cpu"))
        run.start(opt, model, LossTracker(model.loss_names, torch.device("cpu")))

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check_loader(resume, path, content)
    finally:
        path.write_bytes(original)


def test_mutations_reach_the_structure() -> None:
    """The mutation strategy is not toothless: some of its checkpoints fail to load with a
    UserError, and some load (a flip inside tensor data)."""
    outcomes = set()

    @settings(max_examples=40, derandomize=True, deadline=None, database=None)
    @given(content=mutated(SMALL, hot=structure(SMALL)))
    def probe(content: bytes) -> None:
        buffer = io.BytesIO(content)
        try:
            torch.load(buffer, weights_only=True)
            outcomes.add("loads")
        except Exception:
            outcomes.add("fails")

    probe()
    assert outcomes == {"loads", "fails"}


def test_save_checkpoint_round_trip_is_the_fuzzers_baseline(tmp_path: Path) -> None:
    """The unmutated bytes load: a failure above is the mutation's doing."""
    save_checkpoint(tmp_path / "c.pth", {"nets": {"G": {"w": torch.ones(2)}}})
    assert torch.equal(load_checkpoint(tmp_path / "c.pth")["nets"]["G"]["w"], torch.ones(2))
