"""qcow2 images for the suite: made and inspected with qemu-img/qemu-io, exported by a daemon.

Images are built by QEMU's own tools (the reference writer), so a reader bug in the subject
cannot hide behind a writer bug of the suite. `qemu-img` is the judge of the result too:
`convert -O raw` gives the expected guest content, `check` the metadata consistency,
`map` the allocation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .nbdio import run_tool, unix_uri

KiB = 1024
MiB = 1024 * KiB

NBD_SOCKET = "nbd.sock"
CHECK_TIMEOUT = 120

# qemu-img check exit codes (docs/tools/qemu-img.rst)
CHECK_CLEAN = 0
CHECK_CORRUPT = 2
CHECK_LEAKS_ONLY = 3


def output_of(result) -> str:
    return (result.stdout + result.stderr).decode(errors="replace")


def tool(argv: list[str], what: str | None = None, *, cwd: str | Path | None = None, timeout: float = CHECK_TIMEOUT) -> str:
    """Run a peer tool that must succeed; return its stdout+stderr."""
    result = run_tool([str(arg) for arg in argv], cwd=cwd, timeout=timeout)
    assert result.returncode == 0, f"{what or argv[0]} failed ({result.returncode}): {argv}\n{output_of(result)}"
    return output_of(result)


@dataclass(frozen=True)
class ImageSpec:
    """`qemu-img create -f qcow2` options (None = qemu-img's default)."""

    size: int
    cluster_size: int | None = None
    compat: str | None = None  # "0.10" or "1.1"
    refcount_bits: int | None = None
    backing: str | None = None  # stored as given (relative names resolve against the image's directory)
    backing_format: str | None = None
    extra: tuple[str, ...] = ()  # further -o options, e.g. "preallocation=metadata"

    def options(self) -> str:
        options = []
        if self.cluster_size is not None:
            options.append(f"cluster_size={self.cluster_size}")
        if self.compat is not None:
            options.append(f"compat={self.compat}")
        if self.refcount_bits is not None:
            options.append(f"refcount_bits={self.refcount_bits}")
        options.extend(self.extra)
        return ",".join(options)


def create(path: Path, spec: ImageSpec) -> Path:
    """Create a qcow2 image (in its own directory, so that relative backing names mean what they say)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if spec.options():
        argv += ["-o", spec.options()]
    if spec.backing is not None:
        argv += ["-b", spec.backing, "-F", spec.backing_format or "qcow2"]
    tool([*argv, path.name, str(spec.size)], "qemu-img create", cwd=path.parent)
    return path


def qemu_io_file(path: Path, commands: list[str], fmt: str = "qcow2") -> None:
    """Run qemu-io commands directly on an image file (QEMU writes it)."""
    argv = ["qemu-io", "-f", fmt]
    for command in commands:
        argv += ["-c", command]
    output = tool([*argv, path.name], "qemu-io", cwd=path.parent)
    assert "failed" not in output.lower() and "error" not in output.lower(), f"qemu-io {commands}:\n{output}"


def to_raw(image: Path, out: Path, fmt: str = "qcow2") -> Path:
    """The guest content of `image` (backing chain included) as QEMU reads it."""
    tool(["qemu-img", "convert", "-f", fmt, "-O", "raw", image, out], "qemu-img convert -O raw")
    return out


def export_to_raw(uri: str, out: Path) -> Path:
    """The content of an NBD export, copied by nbdcopy into a local file."""
    tool(["nbdcopy", uri, out], "nbdcopy")
    return out


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def first_difference(a: Path, b: Path, chunk: int = 64 * KiB) -> int | None:
    """The first byte offset where two files differ (a shorter file differs at its end)."""
    with open(a, "rb") as left, open(b, "rb") as right:
        position = 0
        while True:
            x, y = left.read(chunk), right.read(chunk)
            if x != y:
                for index, (p, q) in enumerate(zip(x, y)):
                    if p != q:
                        return position + index
                return position + min(len(x), len(y))
            if not x:
                return None
            position += len(x)


@dataclass(frozen=True)
class CheckResult:
    status: int
    report: dict
    output: str

    @property
    def corruptions(self) -> int:
        return self.report.get("corruptions", 0)

    @property
    def leaks(self) -> int:
        return self.report.get("leaks", 0)

    @property
    def check_errors(self) -> int:
        return self.report.get("check-errors", 0)


def check(image: Path) -> CheckResult:
    """`qemu-img check` (JSON report; exit status kept as is, the caller judges it)."""
    result = run_tool(["qemu-img", "check", "--output=json", "-f", "qcow2", str(image)], timeout=CHECK_TIMEOUT)
    text = result.stdout.decode(errors="replace")
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        report = {}
    human = run_tool(["qemu-img", "check", "-f", "qcow2", str(image)], timeout=CHECK_TIMEOUT)
    return CheckResult(status=result.returncode, report=report, output=output_of(human))


def assert_clean(image: Path) -> CheckResult:
    """No corruption and no leak: what QEMU leaves after a clean shutdown."""
    result = check(image)
    assert result.status == CHECK_CLEAN and result.corruptions == 0 and result.leaks == 0 and result.check_errors == 0, (
        f"qemu-img check {image.name}: exit {result.status}\n{result.output}")
    return result


def info(image: Path) -> dict:
    return json.loads(tool(["qemu-img", "info", "--output=json", "-f", "qcow2", image], "qemu-img info"))


def file_map(image: Path, fmt: str = "qcow2") -> list[dict]:
    """`qemu-img map --output=json` of a local image (backing chain included)."""
    return json.loads(tool(["qemu-img", "map", "--output=json", "-f", fmt, image], "qemu-img map"))


def export_map(uri: str) -> list[dict]:
    """`qemu-img map --output=json` through NBD (base:allocation, raw over the export)."""
    return json.loads(tool(["qemu-img", "map", "--output=json", "-f", "raw", uri], "qemu-img map (NBD)"))


def nbdinfo_map(uri: str) -> list[tuple[int, int, int]]:
    """`nbdinfo --map` (base:allocation) as (offset, length, type), adjacent equal types merged.

    The NBD protocol lets a server split a run of equal extents anywhere; what a client can
    rely on is the flags per byte, so that is what is compared.
    """
    extents = json.loads(tool(["nbdinfo", "--map", "--json", uri], "nbdinfo --map"))
    return merge_extents([(extent["offset"], extent["length"], extent["type"]) for extent in extents])


def merge_extents(extents: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    merged: list[tuple[int, int, int]] = []
    for offset, length, kind in extents:
        if merged and merged[-1][2] == kind and merged[-1][0] + merged[-1][1] == offset:
            merged[-1] = (merged[-1][0], merged[-1][1] + length, kind)
        else:
            merged.append((offset, length, kind))
    return merged


NBD_STATE_HOLE = 1
NBD_STATE_ZERO = 2


def expected_nbd_map(local_map: list[dict]) -> list[tuple[int, int, int]]:
    """base:allocation as QSD derives it from the image's block status: HOLE where no layer
    of the chain has data, ZERO where the guest reads zeros known from metadata."""
    return merge_extents([
        (entry["start"], entry["length"],
         (0 if entry["data"] else NBD_STATE_HOLE) | (NBD_STATE_ZERO if entry["zero"] else 0))
        for entry in local_map
    ])


def qcow2_args(image: str, *, node: str = "disk0", file_node: str = "file0", qcow2_opts: str = "",
               file_opts: str = "", writable: bool = False, export: bool = True) -> list[str]:
    """file node on <image> (relative: in {dir}) <- qcow2 node `node`, exported as `node` on
    {dir}/nbd.sock.

    The backing chain is whatever the image header names (QSD's default).
    """
    path = image if image.startswith("/") else f"{{dir}}/{image}"
    args = [
        "--blockdev", f"driver=file,node-name={file_node},filename={path}{file_opts}",
        "--blockdev", f"driver=qcow2,node-name={node},file={file_node}{qcow2_opts}",
    ]
    if export:
        args += [
            "--nbd-server", f"addr.type=unix,addr.path={{dir}}/{NBD_SOCKET}",
            "--export", f"type=nbd,id=exp0,node-name={node},name={node},writable={'on' if writable else 'off'}",
        ]
    return args


def export_uri(workdir: Path, export: str = "disk0") -> str:
    return unix_uri(export, workdir / NBD_SOCKET)
