"""The contract's hygiene: the breaking-change check against the released contract, and the
reference docs generated from its comments."""

from tests.e2e.test_serve_process import ROOT

BUF = ROOT / "node_modules" / ".bin" / "buf"
"""The buf CLI that `npx buf` runs in this repository (npm's @bufbuild/buf, installed by make test)."""
