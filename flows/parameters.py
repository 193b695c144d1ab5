"""Flow parameters as Prefect shows and checks them: the run form's descriptions come from the parameter
models (segopt_core/pipeline/params.py), and `preflight` is the one check every run passes before any work
(the CLI calls it before Prefect starts, each flow first thing, for deployment runs)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from segopt_core.pipeline.params import FlowParams

Fn = TypeVar("Fn", bound=Callable)
TASK_RUNNERS = ("threads", "dask")  # where flows run mapped tasks (flows/runners.py makes them)


def described_by(params: type[FlowParams]) -> Callable[[Fn], Fn]:
    """Give a flow function an "Args:" section made of the model's field descriptions and defaults (Prefect
    reads it into the deployment's parameter schema: the run form shows each description), after checking
    that the function takes exactly the model's fields with the model's defaults."""

    def describe(fn: Fn) -> Fn:
        signature = inspect.signature(fn).parameters
        if set(signature) != set(params.model_fields):
            raise TypeError(
                f"{fn.__name__} must take the fields of {params.__name__}: "
                f"missing {sorted(set(params.model_fields) - set(signature))}, "
                f"extra {sorted(set(signature) - set(params.model_fields))}"
            )
        defaults = params()
        lines = []
        for name, field in params.model_fields.items():
            default, given = getattr(defaults, name), signature[name].default
            if (list(given) if isinstance(given, tuple) else given) != default:
                raise TypeError(
                    f"{fn.__name__}({name}={given!r}): the default is {default!r} in {params.__name__}"
                )
            lines.append(f"    {name}: {field.description}{_shown(default)}")
        fn.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n\nArgs:\n" + "\n".join(lines)
        return fn

    return describe


def _shown(value: object) -> str:
    """' Default: 1,4,8.' as a person reads it in the run form ('' for empty: the description says it)."""
    if value is None or value == []:
        return ""
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return f" Default: {text}."


def preflight(params: FlowParams) -> None:
    """Check what the parameters name (paths, data set, work folder) before any work; OptionError /
    DatasetError (one line, exit 2 on the command line, a failed flow run before any task otherwise).

    Checks that need the orchestration side belong here too, so that the CLI and deployment runs share them:
    a run that logs to MLflow probes the tracking server (a dead one: one line in seconds, not minutes of
    MLflow's retries after the work).
    """
    params.check_inputs()
    if getattr(params, "track", False):
        from segopt_tracking.store import probe_tracking

        probe_tracking()
