"""A stand-in for the `ray` module that runs tasks in process, recording what was asked of it:
the Ray backend's tests without a cluster (`tests/test_ray.py` runs against a real one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FakeRay:
    """Install with `monkeypatch.setitem(sys.modules, "ray", FakeRay())`."""

    def __init__(self, initialized: bool = False):
        self.inits: list[str | None] = []  # the address of each `init`
        self.tasks: list[tuple[str, dict[str, Any], tuple]] = []  # (function name, resources, arguments)
        self._initialized = initialized

    def is_initialized(self) -> bool:
        return self._initialized or bool(self.inits)

    def init(self, address: str | None = None, **kwargs: Any) -> None:
        self.inits.append(address)

    def remote(self, **resources: Any) -> Callable:
        tasks = self.tasks

        def wrap(fn: Callable) -> Any:
            class Remote:
                @staticmethod
                def remote(*args: Any) -> Callable[[], Any]:
                    tasks.append((fn.__name__, resources, args))
                    return lambda: fn(*args)

            return Remote

        return wrap

    @staticmethod
    def wait(refs: list, num_returns: int, timeout: float | None = None) -> tuple[list, list]:
        return refs[:num_returns], refs[num_returns:]

    @staticmethod
    def get(ref: Callable[[], Any]) -> Any:
        return ref()
