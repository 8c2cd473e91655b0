"""The extension's copy of the error codes must match `veil.errors` exactly."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from veil.errors import HTTP_STATUS, ErrorCode

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "extension" / "src" / "shared" / "error-codes.js"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_error_codes", ROOT / "build" / "codegen" / "gen_error_codes.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_file_is_what_the_generator_writes() -> None:
    assert GENERATED.read_text(encoding="utf-8") == _generator().render(), (
        "extension/src/shared/error-codes.js drifted from veil.errors: "
        "run .venv/bin/python build/codegen/gen_error_codes.py"
    )


def test_every_code_and_status_appears_in_the_javascript() -> None:
    text = GENERATED.read_text(encoding="utf-8")
    names = dict(re.findall(r"^  ([A-Z_]+): \"([a-z_]+)\",$", text, re.MULTILINE))
    statuses = {k: int(v) for k, v in re.findall(r"^  ([a-z_]+): (\d+),$", text, re.MULTILINE)}
    assert names == {code.name: code.value for code in ErrorCode}
    assert statuses == {code.value: HTTP_STATUS[code] for code in ErrorCode}
