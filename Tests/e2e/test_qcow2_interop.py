"""qcow2 images written by QEMU, read through the subject's NBD export.

Every image (or backing chain) is made by `qemu-img create`/`convert` and filled by
`qemu-io` on the file, in every cluster size QEMU writes (512 B … 2 MiB), both compat levels,
several refcount widths, compressed clusters (zlib and zstd) and 3-deep chains with relative
backing names. Then, for subject and reference (QSD) alike:

* the export's content (nbdcopy) is byte-identical to `qemu-img convert -O raw` of the image;
* `nbdinfo --map` and `qemu-img map --output=json` over NBD are the same as through QSD's
  export of the same image (differential), and both agree with `qemu-img map` on the file:
  HOLE where no layer holds data, ZERO where the metadata says the guest reads zeros.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.daemon import DaemonCommand
from harness.qcow2 import (
    ImageSpec,
    KiB,
    MiB,
    create,
    expected_nbd_map,
    export_map,
    export_to_raw,
    export_uri,
    file_digest,
    file_map,
    first_difference,
    nbdinfo_map,
    qcow2_args,
    qemu_io_file,
    to_raw,
    tool,
)

TOP = "top.qcow2"


@dataclass(frozen=True)
class Layer:
    """One image of a chain, created bottom-up: qcow2 by `qemu-img create` (spec) or by
    `qemu-img convert -c` of generated data (compression), or a raw file (spec None)."""

    path: str  # relative to the image directory
    size: int
    spec: ImageSpec | None = None
    compression: str | None = None  # "zlib"/"zstd": convert -c from generated data
    commands: tuple[str, ...] = ()  # qemu-io on the finished layer


@dataclass(frozen=True)
class Case:
    name: str
    layers: tuple[Layer, ...]  # bottom first; the last is exported

    @property
    def top(self) -> str:
        return self.layers[-1].path

    def __str__(self) -> str:
        return self.name


def mixed_data(size: int, cluster: int, seed: int) -> bytes:
    """Runs of compressible text, random bytes, zeros and constant bytes, cluster by cluster
    (so `convert -c` yields compressed, uncompressed and unallocated clusters)."""
    generator = random.Random(seed)
    out = bytearray()
    index = 0
    while len(out) < size:
        kind = index % 4
        if kind == 0:
            text = b"".join(b"cluster %d line %d; " % (index, n) for n in range(cluster // 16 + 1))
            out += text[:cluster]
        elif kind == 1:
            out += generator.randbytes(cluster)
        elif kind == 2:
            out += bytes(cluster)
        else:
            out += bytes([index & 0xFF]) * (cluster - 7) + generator.randbytes(7)
        index += 1
    return bytes(out[:size])


def build_layer(directory: Path, layer: Layer) -> None:
    path = directory / layer.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if layer.compression is not None:
        assert layer.spec is not None
        source = directory / (layer.path + ".src")
        source.write_bytes(mixed_data(layer.size, layer.spec.cluster_size or 64 * KiB, seed=len(layer.path)))
        options = f"{layer.spec.options()},compression_type={layer.compression}".lstrip(",")
        tool(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", options, source, path], "qemu-img convert -c")
        source.unlink()
    elif layer.spec is None:
        with open(path, "wb") as raw:
            raw.truncate(layer.size)
    else:
        create(path, layer.spec)
    if layer.commands:
        qemu_io_file(path, list(layer.commands), fmt="raw" if layer.spec is None else "qcow2")


def fill(cluster: int, size: int, compressed_write: bool = True) -> tuple[str, ...]:
    """Writes of every shape for one image: aligned and unaligned, cluster-straddling,
    zeroes with and without unmap, discards, the last cluster, an L2-table boundary, and a
    compressed cluster among normal ones (QEMU compresses only into unallocated clusters
    of at least 4 KiB)."""
    c = cluster
    commands = [
        f"write -P 0x11 0 {3 * c}",
        f"write -P 0x22 {c + 100} 1000",
        f"write -P 0x33 {5 * c - 700} 1400",
        f"write -z {3 * c} {c}",
        f"write -P 0x44 {8 * c} {4 * c}",
        f"write -z -u {8 * c} {c}",
        f"discard {9 * c} {c}",
        f"write -z {10 * c + 512} 1024",
        f"write -P 0x55 {size - c} {c}",
        f"write -P 0x66 {size // 2 + 3} {c + 5}",
        f"write -c -P 0x77 {14 * c} {c}" if compressed_write and c >= 4 * KiB else f"write -P 0x77 {14 * c} {c}",
    ]
    l2_coverage = c * (c // 8)
    if l2_coverage + c < size:
        commands.append(f"write -P 0x88 {l2_coverage - 1000} 2000")
    return tuple(commands)


def plain(name: str, cluster: int, compat: str, refcount_bits: int | None = None, extra: tuple[str, ...] = ()) -> Case:
    size = max(16 * MiB, 32 * cluster)
    spec = ImageSpec(size=size, cluster_size=cluster, compat=compat, refcount_bits=refcount_bits, extra=extra)
    preallocated = any(option.startswith("preallocation=") for option in extra)
    return Case(name, (Layer(TOP, size, spec, commands=fill(cluster, size, compressed_write=not preallocated)),))


def compressed(name: str, cluster: int, algorithm: str, compat: str = "1.1") -> Case:
    size = max(4 * MiB, 16 * cluster)
    spec = ImageSpec(size=size, cluster_size=cluster, compat=compat)
    return Case(name, (Layer(TOP, size, spec, compression=algorithm),))


CASES: list[Case] = []
for cluster in (512, 4 * KiB, 64 * KiB, 2 * MiB):
    for compat in ("0.10", "1.1"):
        CASES.append(plain(f"cluster{cluster}-compat{compat}", cluster, compat))
for bits in (1, 64):
    for cluster in (512, 4 * KiB, 64 * KiB):
        CASES.append(plain(f"refcount{bits}-cluster{cluster}", cluster, "1.1", refcount_bits=bits))
CASES.append(plain("refcount8-cluster64k", 64 * KiB, "1.1", refcount_bits=8))
CASES.append(plain("preallocation-metadata", 64 * KiB, "1.1", extra=("preallocation=metadata",)))
CASES.append(plain("preallocation-falloc", 64 * KiB, "1.1", extra=("preallocation=falloc",)))
CASES.append(plain("lazy-refcounts", 64 * KiB, "1.1", extra=("lazy_refcounts=on",)))
for algorithm in ("zlib", "zstd"):
    for cluster in (512, 4 * KiB, 64 * KiB, 2 * MiB):
        CASES.append(compressed(f"compressed-{algorithm}-cluster{cluster}", cluster, algorithm))
CASES.append(compressed("compressed-zlib-compat0.10", 64 * KiB, "zlib", compat="0.10"))

# Compressed clusters partly overwritten in place (QEMU COWs them), and overlaid.
CASES.append(Case("compressed-rewritten", (
    Layer(TOP, 4 * MiB, ImageSpec(size=4 * MiB, cluster_size=64 * KiB), compression="zstd",
          commands=("write -P 0x99 100000 70000", "write -z 655360 65536", "discard 786432 131072",
                    "write -c -P 0x9a 1179648 65536")),
)))

# 3-deep chains; every backing name is relative to the directory of the image that names it.
CASES.append(Case("chain-qcow2-same-dir", (
    Layer("base.qcow2", 8 * MiB, ImageSpec(size=8 * MiB), commands=fill(64 * KiB, 8 * MiB)),
    Layer("mid.qcow2", 8 * MiB, ImageSpec(size=8 * MiB, cluster_size=4 * KiB, backing="base.qcow2"),
          commands=("write -P 0xa1 30000 200000", "write -z 524288 65536", "write -z -u 589824 4096",
                    "discard 1048576 65536", "write -P 0xa2 8380416 8192")),
    Layer(TOP, 12 * MiB, ImageSpec(size=12 * MiB, backing="mid.qcow2"),
          commands=("write -P 0xb1 0 1000", "write -P 0xb2 196608 65536", "write -z 917504 65536",
                    "discard 1179648 65536", "write -P 0xb3 8388000 1000", "write -P 0xb4 11534336 4096")),
)))
CASES.append(Case("chain-raw-base-across-dirs", (
    Layer("base/base.raw", 3 * MiB + 512, None, commands=("write -P 0xc1 0 3M", "write -P 0xc2 3145728 512")),
    Layer("mid/mid.qcow2", 6 * MiB, ImageSpec(size=6 * MiB, cluster_size=4 * KiB, compat="0.10",
                                              backing="../base/base.raw", backing_format="raw"),
          commands=("write -P 0xd1 4096 4096", "write -z 8192 8192", "discard 65536 65536",
                    "write -P 0xd2 3145000 4000")),
    Layer(TOP, 8 * MiB, ImageSpec(size=8 * MiB, cluster_size=512, backing="mid/mid.qcow2"),
          commands=("write -P 0xe1 100 200", "write -z 12288 4096", "discard 16384 4096",
                    "write -P 0xe2 6291000 1000")),
)))
CASES.append(Case("chain-compat0.10-discards", (
    Layer("base.qcow2", 4 * MiB, ImageSpec(size=4 * MiB, compat="0.10"), commands=("write -P 0xf1 0 4M",)),
    Layer("mid.qcow2", 4 * MiB, ImageSpec(size=4 * MiB, compat="0.10", backing="base.qcow2"),
          commands=("write -P 0xf2 0 2M", "discard 0 64k", "write -z 131072 65536", "write -z -u 262144 65536")),
    Layer(TOP, 4 * MiB, ImageSpec(size=4 * MiB, compat="1.1", backing="mid.qcow2"),
          commands=("write -P 0xf3 65536 4096", "discard 196608 65536", "write -z 2097152 131072")),
)))
CASES.append(Case("chain-compressed-middle", (
    Layer("base.qcow2", 4 * MiB, ImageSpec(size=4 * MiB, cluster_size=2 * MiB), commands=("write -P 0x12 0 4M",)),
    Layer("mid.qcow2", 4 * MiB, ImageSpec(size=4 * MiB, cluster_size=64 * KiB), compression="zlib",
          commands=()),
    Layer(TOP, 4 * MiB, ImageSpec(size=4 * MiB, cluster_size=4 * KiB, backing="mid.qcow2"),
          commands=("write -P 0x13 70000 5000", "write -z 262144 65536")),
)))


def build(case: Case, directory: Path) -> None:
    for layer in case.layers:
        build_layer(directory, layer)


@dataclass
class Observed:
    digest: str
    first_difference: int | None
    nbdinfo: list
    qemu_img_map: list = field(default_factory=list)


def observe(start_daemon, command: DaemonCommand, case: Case, source: Path, expected: Path) -> Observed:
    # Both daemons open the very same (read-only) files: QEMU's block status depends on how
    # sparse the host file is (its metadata-preallocation heuristic), so no copies.
    daemon = start_daemon(command, qcow2_args(str(source / case.top)))
    uri = export_uri(daemon.workdir)
    try:
        content = export_to_raw(uri, daemon.workdir / "export.raw")
        observed = Observed(digest=file_digest(content), first_difference=first_difference(content, expected),
                            nbdinfo=nbdinfo_map(uri), qemu_img_map=export_map(uri))
        content.unlink()
        daemon.stop()
    except AssertionError as error:
        raise AssertionError(f"{command.role}: {error}\n--- daemon log ---\n{daemon.log}") from None
    return observed


@pytest.mark.parametrize("case", CASES, ids=str)
def test_qcow2_image_reads_like_qemu(case: Case, start_daemon, reference_command, subject_command) -> None:
    scratch = start_daemon(reference_command, [], start=False).workdir  # never started: a scratch directory
    images = scratch / "images"
    build(case, images)
    expected = to_raw(images / case.top, scratch / "expected.raw")
    local_map = expected_nbd_map(file_map(images / case.top))
    reference = observe(start_daemon, reference_command, case, images, expected)
    assert reference.first_difference is None, f"QSD's export differs at byte {reference.first_difference}"
    assert reference.nbdinfo == local_map, (
        f"QSD's base:allocation does not follow qemu-img map (suite assumption)\n  QSD:  {reference.nbdinfo}\n"
        f"  file: {local_map}")
    subject = observe(start_daemon, subject_command, case, images, expected)
    assert subject.first_difference is None, (
        f"subject's export differs from qemu-img convert at byte {subject.first_difference}")
    assert subject.digest == reference.digest
    assert subject.nbdinfo == reference.nbdinfo, f"nbdinfo --map differs\n  reference: {reference.nbdinfo}\n  subject:   {subject.nbdinfo}"
    assert subject.qemu_img_map == reference.qemu_img_map, (
        f"qemu-img map over NBD differs\n  reference: {reference.qemu_img_map}\n  subject:   {subject.qemu_img_map}")
    assert subject.nbdinfo == local_map


@pytest.mark.parametrize("cluster", [64 * KiB, 2 * MiB])
def test_export_ready_when_monitor_answers(cluster: int, start_daemon, any_command) -> None:
    """QSD processes its options (opening the qcow2 image, starting the NBD server, adding the
    export) before its main loop answers the monitor: once `qmp_capabilities` has returned,
    the export accepts clients. Clients (and this suite) rely on that."""
    daemon = start_daemon(any_command, qcow2_args(TOP), start=False)
    size = 64 * MiB
    create(daemon.workdir / TOP, ImageSpec(size=size, cluster_size=cluster))
    qemu_io_file(daemon.workdir / TOP, [f"write -P 0x5a 0 {2 * cluster}"])
    daemon.start()
    socket_present = (daemon.workdir / "nbd.sock").exists()
    exports = daemon.qmp.execute("query-block-exports")
    assert socket_present, f"{any_command.role}: NBD socket missing after qmp_capabilities returned"
    assert [export["id"] for export in exports] == ["exp0"], exports
    assert nbdinfo_map(export_uri(daemon.workdir))[0] == (0, 2 * cluster, 0)
    daemon.stop()
