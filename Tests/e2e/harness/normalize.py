"""Normalisation of daemon output before reference/subject comparison.

Only what legitimately differs between two correct implementations (or two runs) is
removed: event timestamps, the temporary directory, the random part of implicit node names,
distribution package/version strings,
host allocation sizes, and I/O counters other than `wr_highest_offset` (whose keys must
still be present). Everything else is compared exactly.
"""

from __future__ import annotations

import re
from typing import Any

COUNTER = "<counter>"

# QEMU names implicit nodes "#block" + a counter + two random digits (so that nobody relies
# on them); only the prefix is comparable.
_IMPLICIT_NODE = re.compile(r"#block[0-9]+")


def implicit_node_names(value: Any) -> Any:
    if isinstance(value, str):
        return _IMPLICIT_NODE.sub("#block<N>", value)
    if isinstance(value, list):
        return [implicit_node_names(item) for item in value]
    if isinstance(value, dict):
        return {implicit_node_names(key): implicit_node_names(item) for key, item in value.items()}
    return value


def replace_strings(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [replace_strings(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: replace_strings(item, old, new) for key, item in value.items()}
    return value


def event(message: dict) -> dict:
    """An event without its timestamp (name and data only)."""
    assert "timestamp" in message, f"event without timestamp: {message!r}"
    stamp = message["timestamp"]
    assert set(stamp) == {"seconds", "microseconds"}, f"bad timestamp {stamp!r}"
    normalized = {"event": message["event"]}
    if "data" in message:
        normalized["data"] = message["data"]
    return normalized


def version(value: dict) -> dict:
    """query-version / greeting version: keep the shape, drop the numbers and package."""
    assert set(value) == {"qemu", "package"}, value
    assert isinstance(value["package"], str), value
    qemu = value["qemu"]
    assert set(qemu) == {"major", "minor", "micro"}, qemu
    assert all(isinstance(number, int) for number in qemu.values()), qemu
    return {"qemu": {key: "<int>" for key in sorted(qemu)}, "package": "<string>"}


def _block_device_info(node: dict) -> dict:
    node = dict(node)
    image = node.get("image")
    if isinstance(image, dict):
        node["image"] = _image_info(image)
    return node


def _image_info(image: dict) -> dict:
    image = dict(image)
    image.pop("actual-size", None)
    if isinstance(image.get("backing-image"), dict):
        image["backing-image"] = _image_info(image["backing-image"])
    return image


def _stats(stats: dict) -> dict:
    out = {}
    for key, value in stats.items():
        if key == "wr_highest_offset" or isinstance(value, (bool, list, dict)):
            out[key] = value
        else:
            out[key] = COUNTER
    return out


def _block_stats(entry: dict) -> dict:
    entry = dict(entry)
    entry["stats"] = _stats(entry["stats"])
    if isinstance(entry.get("driver-specific"), dict):
        entry["driver-specific"] = {
            key: (value if key == "driver" else COUNTER) for key, value in entry["driver-specific"].items()
        }
    for child in ("parent", "backing"):
        if isinstance(entry.get(child), dict):
            entry[child] = _block_stats(entry[child])
    return entry


def command_return(command: str, value: Any) -> Any:
    """Per-command normalisation of a successful `return` value."""
    if command == "query-version":
        return version(value)
    if command == "query-named-block-nodes":
        return [_block_device_info(node) for node in value]
    if command == "query-blockstats":
        return [_block_stats(entry) for entry in value]
    return value


def reply(command: str, message: dict) -> dict:
    """A reply as compared: `return` (normalised) or error class+desc, plus the id echo."""
    out: dict[str, Any] = {}
    if "id" in message:
        out["id"] = message["id"]
    if "return" in message:
        out["return"] = command_return(command, message["return"])
    else:
        error = message["error"]
        assert set(error) == {"class", "desc"}, f"error members {sorted(error)}"
        out["error"] = {"class": error["class"], "desc": error["desc"]}
    extra = set(message) - {"id", "return", "error"}
    assert not extra, f"unexpected reply members {sorted(extra)} in {message!r}"
    return out
