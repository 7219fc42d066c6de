"""
The recorded provider fixtures are golden inputs: their bytes must be exactly those recorded (SHA256SUMS).
"""

from __future__ import annotations

import hashlib

from conftest import FIXTURES


def test_every_recorded_fixture_has_its_recorded_bytes() -> None:
    listed = {}
    for line in (FIXTURES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.lstrip("*")] = digest
    assert len(listed) >= 37
    for name, digest in listed.items():
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == digest, name


def test_every_fixture_file_is_listed_with_its_source() -> None:
    readme = (FIXTURES / "README.md").read_text()
    listed = {line.split(maxsplit=1)[1].lstrip("*") for line in (FIXTURES / "SHA256SUMS").read_text().splitlines()}
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
               if p.is_file() and p.name not in ("README.md", "SHA256SUMS", "NOTICE", ".gitattributes")}
    assert on_disk == listed
    for name in listed:
        assert f"`{name}`" in readme, name
