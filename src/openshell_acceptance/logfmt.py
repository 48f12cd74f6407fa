"""Reading ``level=... event=... key=value`` lines, as the reference logs them."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["events", "parse"]

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def parse(line: str) -> dict[str, str]:
    """The fields of one logfmt line; a value may be double-quoted with escapes."""
    fields: dict[str, str] = {}
    index, size = 0, len(line)
    while index < size:
        while index < size and line[index] == " ":
            index += 1
        start = index
        while index < size and line[index] not in "= ":
            index += 1
        key = line[start:index]
        if index >= size or line[index] != "=":
            if key:
                fields[key] = ""
            continue
        index += 1
        value, index = _value(line, index)
        if key:
            fields[key] = value
    return fields


def events(lines: Iterable[str], name: str) -> list[dict[str, str]]:
    """The fields of every line that logs the event ``name``, in order."""
    found = []
    for line in lines:
        if f"event={name}" not in line:
            continue
        fields = parse(line)
        if fields.get("event") == name:
            found.append(fields)
    return found


def _value(line: str, index: int) -> tuple[str, int]:
    if index < len(line) and line[index] == '"':
        index += 1
        chars: list[str] = []
        while index < len(line) and line[index] != '"':
            if line[index] == "\\" and index + 1 < len(line):
                index += 1
                chars.append(_ESCAPES.get(line[index], line[index]))
            else:
                chars.append(line[index])
            index += 1
        return "".join(chars), index + 1
    start = index
    while index < len(line) and line[index] != " ":
        index += 1
    return line[start:index], index
