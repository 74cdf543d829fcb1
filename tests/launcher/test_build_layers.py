"""The dependencies layer's writer (launcher/layers.py): the same tar as images.write_layer,
one valid gzip stream that gzip and tar read back, the same digest whatever the threads."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from cellpipe.launcher import layers
from cellpipe.launcher.images import write_layer
from cellpipe.launcher.layers import write_layer_parallel


def make_tree(root: Path) -> Path:
    """A site-packages-like tree: files of odd sizes around the block size, an executable,
    an empty file, a hard link, symbolic links to a file and to a folder."""
    site = root / "site-packages"
    (site / "pkg" / "sub").mkdir(parents=True)
    data = hashlib.sha256(b"seed").digest() * (3 * layers.BLOCK // 32 + 7)  # not compressible
    (site / "pkg" / "big.bin").write_bytes(data[: 2 * layers.BLOCK + 513])
    (site / "pkg" / "text.py").write_text("print('hello')\n" * 50_000)  # compressible, > BLOCK
    (site / "pkg" / "empty.txt").write_bytes(b"")
    (site / "pkg" / "sub" / "odd.dat").write_bytes(b"x" * 1023)
    tool = site / "pkg" / "tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    os.link(site / "pkg" / "text.py", site / "pkg" / "hard.py")
    (site / "pkg" / "link.py").symlink_to("text.py")
    (site / "pkg" / "linked-folder").symlink_to("sub")
    (site / "pkg.dist-info").mkdir()
    (site / "pkg.dist-info" / "RECORD").write_text("pkg/text.py,,\n")
    return site


def layer_arguments(site: Path) -> dict[str, Any]:
    return {
        "files": {"/cellpipe/venv/pyvenv.cfg": b"home = /usr/bin\n"},
        "trees": {"/cellpipe/venv/lib/python3.11/site-packages": site},
        "symlinks": {"/cellpipe/venv/bin/python": "/usr/bin/python3.11"},
    }


def test_the_tar_inside_is_the_one_write_layer_writes(tmp_path: Path) -> None:
    arguments = layer_arguments(make_tree(tmp_path))
    serial = write_layer(tmp_path / "serial.tar.gz", **arguments)
    parallel = write_layer_parallel(tmp_path / "parallel.tar.gz", **arguments)
    assert parallel.diff_id == serial.diff_id
    assert gzip.decompress(parallel.path.read_bytes()) == gzip.decompress(serial.path.read_bytes())


def test_the_blob_is_one_valid_gzip_stream_that_tar_reads(tmp_path: Path) -> None:
    site = make_tree(tmp_path)
    layer = write_layer_parallel(tmp_path / "layer.tar.gz", **layer_arguments(site))
    blob = layer.path.read_bytes()
    assert layer.size == len(blob)
    assert layer.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert layer.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()
    if shutil.which("gzip"):
        subprocess.run(["gzip", "-t", str(layer.path)], check=True)
    # one member: the stream ends where the blob ends
    decompressor = zlib.decompressobj(31)
    decompressor.decompress(blob)
    assert decompressor.eof and decompressor.unused_data == b""
    unpacked = tmp_path / "unpacked"
    with tarfile.open(layer.path, "r:gz") as tar:
        tar.extractall(unpacked, filter="tar")
        members = {m.name: m for m in tar.getmembers()}
    inside = unpacked / "cellpipe/venv/lib/python3.11/site-packages"
    for name in ("pkg/big.bin", "pkg/text.py", "pkg/hard.py", "pkg/empty.txt", "pkg/sub/odd.dat"):
        assert (inside / name).read_bytes() == (site / name).read_bytes(), name
    assert os.readlink(inside / "pkg/link.py") == "text.py"
    assert os.readlink(inside / "pkg/linked-folder") == "sub"
    prefix = "cellpipe/venv/lib/python3.11/site-packages/pkg/"
    assert members[prefix + "tool.sh"].mode == 0o755
    assert members[prefix + "text.py"].mode == 0o644
    assert {m.mtime for m in members.values()} == {0}
    assert {(m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, "root")}


@pytest.mark.parametrize("threads", [1, 3, 8])
def test_the_digest_depends_on_the_content_only(tmp_path: Path, threads: int) -> None:
    arguments = layer_arguments(make_tree(tmp_path))
    one = write_layer_parallel(tmp_path / "one.tar.gz", threads=2, **arguments)
    other = write_layer_parallel(tmp_path / "other.tar.gz", threads=threads, **arguments)
    assert (other.digest, other.diff_id, other.size) == (one.digest, one.diff_id, one.size)
    # a copy of the tree made later (other times, other inode order) gives the same layer
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "site-packages", copy, symlinks=True)
    again = write_layer_parallel(tmp_path / "again.tar.gz", **layer_arguments(copy))
    assert again.digest == one.digest


def test_small_and_empty_layers_are_valid_too(tmp_path: Path) -> None:
    for name, files in (("empty", {}), ("small", {"/a/b.txt": b"b"})):
        layer = write_layer_parallel(tmp_path / f"{name}.tar.gz", files=files)
        serial = write_layer(tmp_path / f"{name}-serial.tar.gz", files=files)
        assert layer.diff_id == serial.diff_id
        assert gzip.decompress(layer.path.read_bytes()) == gzip.decompress(serial.path.read_bytes())
