"""Reading a bundle's entries from a directory or a `.zip`, without ever following links.

Both sources give the same view: flat names → kind (file / symlink / other) and a bounded
reader. Zip members are read into memory, never extracted, so a hostile name cannot write
anywhere; such names are still refused, as evidence of tampering.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mouthpiece.checkpoints.errors import CheckpointError

MAX_FILE_BYTES = 2 << 30  # 2 GiB per file
MAX_BUNDLE_BYTES = 4 << 30  # 4 GiB per bundle
MAX_ENTRIES = 64


@dataclass
class Entry:
    name: str
    kind: str  # "file" | "symlink" | "other"
    size: int  # bytes (as listed; checked again on read)
    _read: Callable[[int], bytes]

    def read(self, limit: int = MAX_FILE_BYTES) -> bytes:
        if self.kind == "symlink":
            raise CheckpointError("symlink", f"{self.name} is a symbolic link; bundles hold plain files only")
        if self.kind != "file":
            raise CheckpointError("unexpected_file", f"{self.name} is not a plain file")
        if self.size > limit:
            raise CheckpointError("too_large", f"{self.name} is {self.size} bytes (limit {limit})")
        return self._read(limit)


@contextlib.contextmanager
def open_entries(bundle: str | Path) -> Iterator[dict[str, Entry]]:
    """Entries by name of a bundle folder or `.zip` (readable inside the `with` block)."""
    path = Path(bundle)
    if path.is_dir():
        yield _dir_entries(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError("unsafe_path", f"{bundle}: damaged zip archive ({exc})") from exc
        with zf:
            yield _zip_entries(zf, path.name)
    else:
        raise CheckpointError("not_found", f"{bundle}: not a bundle folder or .zip")


def _dir_entries(root: Path) -> dict[str, Entry]:
    entries = {}
    with os.scandir(root) as scan:
        for item in scan:
            if len(entries) >= MAX_ENTRIES:
                raise CheckpointError("unexpected_file", f"{root} holds more than {MAX_ENTRIES} entries")
            mode = item.stat(follow_symlinks=False)  # lstat: a link is seen as a link
            kind = "symlink" if stat.S_ISLNK(mode.st_mode) else "file" if stat.S_ISREG(mode.st_mode) else "other"
            entries[item.name] = Entry(item.name, kind, mode.st_size, _file_reader(Path(item.path)))
    return entries


def _file_reader(path: Path) -> Callable[[int], bytes]:
    def read(limit: int) -> bytes:
        try:  # O_NOFOLLOW: a file swapped for a link after listing is refused, not followed
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CheckpointError("symlink", f"{path.name} is a symbolic link") from exc
            raise CheckpointError("missing_file", f"{path.name}: cannot open ({exc.strerror})") from exc
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CheckpointError("unexpected_file", f"{path.name} is not a plain file")
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise CheckpointError("too_large", f"{path.name} is larger than {limit} bytes")
        return data
    return read


def _zip_member_name(raw: str) -> str:
    bad = (raw.startswith(("/", "\\")) or "\\" in raw or "\x00" in raw or ":" in raw
           or any(part in ("", ".", "..") for part in raw.rstrip("/").split("/")))
    if bad:
        raise CheckpointError("unsafe_path", f"zip member {raw!r} has an unsafe path (absolute, '..', or odd characters)")
    return raw


def _zip_entries(zf: zipfile.ZipFile, label: str) -> dict[str, Entry]:
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise CheckpointError("unexpected_file", f"{label} holds more than {MAX_ENTRIES} members")
    names = [_zip_member_name(info.filename) for info in infos]
    # A zip of the folder itself has one top-level directory: strip it.
    tops = {name.split("/", 1)[0] for name in names}
    prefix = f"{tops.pop()}/" if len(tops) == 1 and all("/" in n for n in names) else ""
    entries: dict[str, Entry] = {}
    total = 0
    for info, name in zip(infos, names, strict=True):
        flat = name[len(prefix):]
        if flat == "":  # the top-level directory entry itself
            continue
        if flat in entries:
            raise CheckpointError("unsafe_path", f"zip member {flat!r} appears twice")
        unix_mode = info.external_attr >> 16
        if stat.S_ISLNK(unix_mode):
            kind = "symlink"
        elif info.is_dir() or "/" in flat or info.flag_bits & 0x1:  # nested / encrypted
            kind = "other"
        else:
            kind = "file"
        total += info.file_size
        if info.file_size > MAX_FILE_BYTES or total > MAX_BUNDLE_BYTES:
            raise CheckpointError("too_large", f"zip member {flat!r} exceeds the size limits")
        entries[flat] = Entry(flat, kind, info.file_size, _zip_reader(zf, info))
    return entries


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[int], bytes]:
    def read(limit: int) -> bytes:
        try:
            with zf.open(info) as member:
                data = member.read(min(limit, info.file_size) + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:  # CRC error, truncation
            raise CheckpointError("hash_mismatch", f"zip member {info.filename!r} is damaged ({exc})") from exc
        if len(data) > info.file_size:  # a member that inflates past its declared size
            raise CheckpointError("too_large", f"zip member {info.filename!r} is larger than declared")
        return data
    return read
