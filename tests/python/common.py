"""Shared helpers for the Python client checks: configuration from the environment,
a tiny check runner, and assertion helpers that say what differed."""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Callable


class CheckFailed(Exception):
    pass


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"error: environment variable {name} is required")
    return value


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str) -> set[str]:
    return {p.strip() for p in os.environ.get(name, "").split(",") if p.strip()}


def check(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def eq(actual, expected, what: str) -> None:
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def same_bytes(actual: bytes, expected: bytes, what: str) -> None:
    if actual != expected:
        first = next(
            (i for i, (a, b) in enumerate(zip(actual, expected)) if a != b),
            min(len(actual), len(expected)),
        )
        raise CheckFailed(
            f"{what}: body differs (got {len(actual)} bytes, expected {len(expected)}; "
            f"first difference at offset {first})"
        )


class Runner:
    """Runs named checks in order, keeps going after a failure, and exits non-zero
    if any failed. SKIP_CHECKS=a,b skips checks by name; ONLY_CHECKS=a,b runs only those."""

    def __init__(self, suite: str):
        self.suite = suite
        self.passed: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.skipped: list[tuple[str, str]] = []
        self.skip = env_list("SKIP_CHECKS")
        self.only = env_list("ONLY_CHECKS")

    def run(self, name: str, fn: Callable[[], None], skip_reason: str | None = None) -> None:
        if skip_reason is None and name in self.skip:
            skip_reason = "listed in SKIP_CHECKS"
        if skip_reason is None and self.only and name not in self.only:
            skip_reason = "not in ONLY_CHECKS"
        if skip_reason is not None:
            self.skipped.append((name, skip_reason))
            print(f"skip {name} ({skip_reason})", flush=True)
            return
        start = time.monotonic()
        try:
            fn()
        except CheckFailed as e:
            self.failed.append((name, str(e)))
            print(f"FAIL {name}: {e}", flush=True)
        except Exception as e:  # an unexpected error is a failure too, with its trace
            self.failed.append((name, f"{type(e).__name__}: {e}"))
            print(f"FAIL {name}: unexpected {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
        else:
            self.passed.append(name)
            print(f"ok   {name} ({time.monotonic() - start:.2f}s)", flush=True)

    def finish(self) -> None:
        if self.failed:
            print(f"\n{self.suite}: failed checks:", flush=True)
            for name, msg in self.failed:
                print(f"  {name}: {msg}", flush=True)
        print(
            f"{self.suite}: {len(self.passed)} checks passed, {len(self.failed)} checks failed, "
            f"{len(self.skipped)} checks skipped",
            flush=True,
        )
        sys.exit(1 if self.failed else 0)
