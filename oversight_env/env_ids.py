"""Environment ids as gymnasium writes them, and the modules that register environments.

gymnasium's `gym.make("module:Env-v0")` imports `module` (which registers `Env-v0`) before it
looks the id up. Every function here that takes an id accepts that form, so a researcher's own
environment works from the command line, in specs and in a run's `config.json`, where no code of
theirs ran first: the run records the id with its module and finds the environment again.
"""

from __future__ import annotations

import importlib
import os
import sys

from oversight_env.spec import invalid_argument


def import_env_module(name: str, argument: str = "import", value: str | None = None) -> None:
    """Import the module `name` (which registers environments); a one-line ValueError naming it
    when it cannot be found or fails while importing. The working directory is searched too, as
    `python -m` does, since a console script's path does not include it. The error names
    `argument` and `value` (default: `name`)."""
    shown = name if value is None else value
    if not isinstance(name, str) or not name or any(not part.isidentifier() for part in name.split(".")):
        raise invalid_argument(argument, shown, f"{name!r} is not a module name such as 'mylab' or 'mylab.envs'")
    try:
        _import(name)
    except ModuleNotFoundError as error:
        if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
            raise invalid_argument(argument, shown, f"importing module {name!r} failed: {error}") from None
        raise invalid_argument(argument, shown, f"no module {name!r} (searched the working directory "
                               f"{os.getcwd()} and the installed packages)") from None
    except Exception as error:  # the user's module raised: name it, in one line
        raise invalid_argument(argument, shown, f"importing module {name!r} failed: {type(error).__name__}: {error}") from None


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        cwd = os.getcwd()
        missing_top = error.name is not None and error.name == name.split(".")[0]
        if not missing_top or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)
        importlib.import_module(name)


def resolve_env_id(env_id: str, argument: str = "env_id") -> str:
    """The registered id of `env_id`: "module:Env-v0" imports `module` and gives "Env-v0"; an id
    without a module is returned as it is."""
    if not isinstance(env_id, str):
        raise invalid_argument(argument, env_id, "expected a string such as 'OversightGrid/DiamondGhost-5x5-v0'")
    if ":" not in env_id:
        return env_id
    module, _, bare = env_id.partition(":")
    if not bare or ":" in bare:
        raise invalid_argument(argument, env_id, "expected 'module:Env-v0' (one colon, a module and then a registered id)")
    import_env_module(module, argument, value=env_id)
    return bare


def short_name(env_id: str) -> str:
    """The id without its module and namespace ("mylab:MyLab/Lava-v0" -> "Lava-v0"): the part
    that names directories."""
    return env_id.rpartition(":")[2].rpartition("/")[2]
