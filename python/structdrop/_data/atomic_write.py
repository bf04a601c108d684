"""Files that appear whole or not at all, and the identity of a file behind its paths.

Every file the command line writes goes through :func:`replacing`: the content is written to a
temporary file in the target's own folder (the same file system, so the final rename is atomic)
and renamed onto the target only once it is complete. A failure part-way (an exception, a full
disk, Ctrl-C) therefore leaves whatever was at the target before untouched, and a reader never
sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["file_identity", "replacing", "write_text"]


def _new_file_mode(target: Path) -> int:
    """The permission bits a plain ``open(target, "w")`` would give: the existing file's, or
    0o666 less the umask (mkstemp creates its files 0o600)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto ``path`` when the block completes.

    The temporary file exists (empty) when the block starts and carries the target's suffix, so
    writers that pick a format from the name (``np.lib.format.open_memmap``, matplotlib) behave
    as they would on the target. On an exception it is removed and the target is left as it was.

    Raises:
        OSError: the folder cannot hold the temporary file, or the rename fails.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> with replacing(target) as partial:
        ...     _ = partial.write_text("done")
        >>> target.read_text()
        'done'
    """
    target = Path(path)
    handle, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.stem}.", suffix=f".partial{target.suffix}"
    )
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.chmod(partial, _new_file_mode(target))
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`replacing`; returns the path.

    Raises:
        OSError: the file cannot be written (the target is then left as it was).
    """
    with replacing(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)


def file_identity(path: str | os.PathLike[str]) -> tuple[object, ...]:
    """A key equal for two paths exactly when they name the same file.

    An existing file is known by its device and inode (``os.stat`` follows symbolic links, and
    hard links share the inode; on Windows ``st_ino`` is the file index). A path that does not
    exist yet is known by its absolute, symlink-resolved, case-normalised spelling.

    Example:
        >>> file_identity("a/../b.npy") == file_identity("b.npy")
        True
    """
    try:
        info = os.stat(path)
    except OSError:
        return ("path", os.path.normcase(os.path.realpath(path)))
    return ("file", info.st_dev, info.st_ino)
