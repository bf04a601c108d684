"""The command line never destroys a file: an output that names an input is refused before
anything is read, and every output appears whole or not at all."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from structdrop._data.atomic_write import file_identity, replacing, write_text
from structdrop.cli import main
from structdrop.cli import solve as solve_module


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((5, 40))
    Y = rng.standard_normal((3, 5)) @ X + 0.1 * rng.standard_normal((3, 40))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    return tmp_path, X, Y


def snapshot(folder):
    """Every file in ``folder`` with its bytes (hidden partial files included)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def solve(folder, *extra: str) -> int:
    return main(["solve", str(folder / "Y.npy"), "--X", str(folder / "X.npy"), "--block-size", "1",
                 "--theta-bar", "0.5", "--quiet", *extra])  # fmt: skip


def alias(folder, how: str, name: str) -> str:
    """Another path naming the file ``folder/name``: spelt differently, a symlink, a hard link."""
    if how == "spelling":
        (folder / "sub").mkdir()
        return str(folder / "sub" / ".." / name)
    if how == "symlink":
        link = folder / f"link-{name}"
        link.symlink_to(folder / name)
        return str(link)
    link = folder / f"hard-{name}"
    os.link(folder / name, link)
    return str(link)


@pytest.mark.parametrize("how", ["same", "spelling", "symlink", "hardlink"])
@pytest.mark.parametrize(
    ("option", "victim"),
    [("--out-A", "X.npy"), ("--out-A", "Y.npy"), ("--out", "X.npy"), ("--out", "Y.npy")],
)
def test_output_onto_an_input_is_refused_and_nothing_changes(capsys, inputs, option, victim, how):
    folder = inputs[0]
    path = str(folder / victim) if how == "same" else alias(folder, how, victim)
    before = snapshot(folder)
    code = solve(folder, option, path)
    err = capsys.readouterr().err
    assert code == 2
    assert f"{option} '{path}' is the same file as" in err
    assert ("--X" if victim == "X.npy" else "Y") in err
    assert snapshot(folder) == before  # the inputs' bytes, and no file left behind


def test_the_two_outputs_on_one_file_are_refused(capsys, inputs):
    folder = inputs[0]
    code = solve(folder, "--out", str(folder / "C.npy"), "--out-A", str(folder / "." / "C.npy"))
    assert code == 2
    assert "another output" in capsys.readouterr().err
    assert not (folder / "C.npy").exists()


def test_large_X_onto_itself_is_refused_before_reading(capsys, inputs, monkeypatch):
    """The data-losing case: a mapped X written in several chunks. The refusal must come before
    any read, so loading is made to fail loudly if it is reached."""
    folder = inputs[0]

    def no_load(*args, **kwargs):
        raise AssertionError("an input was read before the output paths were checked")

    monkeypatch.setattr(solve_module, "_load", no_load)
    before = snapshot(folder)
    assert solve(folder, "--out-A", str(folder / "X.npy")) == 2
    assert snapshot(folder) == before


def test_chunked_output_is_whole_or_absent(capsys, inputs, monkeypatch):
    """A* written in many chunks: correct when it completes; when reading X fails part-way the
    earlier file at the target stays as it was and no partial file remains."""
    folder, X, _ = inputs
    monkeypatch.setattr(solve_module, "CHUNK_BYTES", 8 * 5 * 7)  # 7 columns a chunk: 6 chunks
    target = folder / "A.npy"
    assert solve(folder, "--out", str(folder / "C.npy"), "--out-A", str(target)) == 0
    C = np.load(folder / "C.npy")
    np.testing.assert_allclose(np.load(target), C @ X, rtol=1e-13, atol=1e-13)
    target.write_bytes(b"an earlier result")
    mode = stat.S_IMODE(os.stat(target).st_mode)

    from structdrop._data import memmap_chunks

    calls = {"n": 0}
    original = memmap_chunks.ChunkReader.read

    def failing_read(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(5, "Input/output error")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(memmap_chunks.ChunkReader, "read", failing_read)
    before = snapshot(folder)
    assert solve(folder, "--out-A", str(target)) == 2
    assert "X: cannot read it: Input/output error" in capsys.readouterr().err
    assert calls["n"] == 3
    assert snapshot(folder) == before
    assert stat.S_IMODE(os.stat(target).st_mode) == mode


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".NPY", ".NpZ"])
def test_each_format_is_written_under_its_own_name(capsys, inputs, suffix):
    """np.save/np.savez append '.npy'/'.npz' to a name without it: the file must land exactly at
    the path given, whatever the case of its suffix, with the permissions a plain write gives."""
    folder = inputs[0]
    target = folder / f"C{suffix}"
    assert solve(folder, "--out", str(target)) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["X.npy", "Y.npy", target.name])
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~umask


def test_replacing_keeps_the_target_on_any_exception(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "first")
    for error in (ValueError("bad"), KeyboardInterrupt()):
        with pytest.raises(type(error)), replacing(target) as partial:
            partial.write_text("half")
            raise error
        assert target.read_text() == "first"
        assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert write_text(target, "second") == target
    assert target.read_text() == "second"


def test_file_identity_sees_through_spellings_and_links(tmp_path):
    (tmp_path / "a").write_text("x")
    (tmp_path / "b").write_text("x")  # same content, another file
    (tmp_path / "s").symlink_to(tmp_path / "a")
    os.link(tmp_path / "a", tmp_path / "h")
    key = file_identity(tmp_path / "a")
    assert file_identity(tmp_path / "s") == key
    assert file_identity(tmp_path / "h") == key
    assert file_identity(str(tmp_path / "." / "a")) == key
    assert file_identity(tmp_path / "b") != key
    # not yet existing: by resolved spelling
    assert file_identity(tmp_path / "new") == file_identity(tmp_path / "x" / ".." / "new")
    assert file_identity(tmp_path / "new") != file_identity(tmp_path / "new2")


def test_sweep_keeps_an_earlier_figure_when_plotting_fails(capsys, inputs, monkeypatch):
    """`structdrop sweep` writes its PNGs through the same atomic path: a plot that fails while
    being saved leaves the earlier PNG in place and no partial file."""
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    folder = inputs[0]
    out = folder / "sweep"
    args = ["sweep", str(folder / "Y.npy"), "--block-sizes", "1:2", "--theta-bars", "0.4:0.6:3",
            "--widths", "5,10", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    earlier = snapshot(out)
    assert "rank_phase.png" in earlier and not any(n.startswith(".") for n in earlier)
    original = matplotlib.figure.Figure.savefig

    def half_then_fail(self, fname, *a, **k):
        original(self, fname, *a, **k)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_fail)
    assert main(args) == 2
    assert "No space left on device" in capsys.readouterr().err
    after = snapshot(out)
    assert after["rank_phase.png"] == earlier["rank_phase.png"]
    assert sorted(after) == sorted(earlier)


@pytest.mark.slow  # a LocalCluster of worker processes: not under the sanitizers
@pytest.mark.parametrize("x_file", ["X.npy", "data.npz"])
def test_dask_out_A_reads_X_as_given(capsys, inputs, x_file):
    """--out-A on Dask reads X back in this process: an .npz under --X-key as well as a .npy
    (an .npz was handed to np.load(mmap_mode=...) and failed with an AttributeError)."""
    pytest.importorskip("distributed")
    folder, X, _ = inputs
    np.savez(folder / "data.npz", other=np.zeros(3), X=X)
    extra = ["--X-key", "X"] if x_file.endswith(".npz") else []
    args = ["solve", str(folder / "Y.npy"), "--X", str(folder / x_file), *extra,
            "--block-size", "1",
            "--theta-bar", "0.5", "--quiet", "--dask", "local", "--out", str(folder / "C.npy"),
            "--out-A", str(folder / "A.npy")]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    C = np.load(folder / "C.npy")
    np.testing.assert_allclose(np.load(folder / "A.npy"), C @ X, rtol=1e-13, atol=1e-13)
