"""The command line's shared parts: the Typer apps, consoles, options and error handling.

The edge: a command parses its options, runs one use case of `jobs` (`using`), and renders the
typed result it returns (`--json` prints that same object, `emit`); errors map to exit codes
(0 ok; 1 failed, or partial: ops failed and kept for retry; 2 bad input, or a store, broker,
CRM or source that cannot be reached; 3 another run holds the project's run lock). Never a
traceback for bad input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from signalplay import jobs
from signalplay.errors import (
    ConfigError,
    LockedError,
    SignalplayError,
    UnavailableError,
    UnreachableError,
)
from signalplay.ops import logs
from signalplay.settings import load_project

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Turn customer signals into Customer Success plays in the CRM.",
)
mappings_app = typer.Typer(no_args_is_help=True, help="Check and preview the RevOps files.")
sandbox_app = typer.Typer(no_args_is_help=True, help="The loopback stand-ins of the CRM APIs.")
profile_app = typer.Typer(no_args_is_help=True, help="The unified account profile.")
identity_app = typer.Typer(no_args_is_help=True, help="How records join accounts.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Records that could not be used.")
crm_app = typer.Typer(
    no_args_is_help=True, help="Provision and preflight the CRM: fields, picklists, owners."
)
app.add_typer(mappings_app, name="mappings")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(profile_app, name="profile")
app.add_typer(identity_app, name="identity")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(crm_app, name="crm")
# User data (names, owners, errors quoting records) is printed literally: no markup, no emoji
# codes; colour comes from styled `Text` only. Lines are never wrapped: an error naming a long
# path stays one line, and piped output can be read by line.
console = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)
out = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)
T = TypeVar("T")

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", help="Project folder (with signalplay.yaml).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.callback()
def main(
    log_json: Annotated[
        bool,
        typer.Option("--log-json", envvar="SIGNALPLAY_LOG_JSON", help="Log JSON lines (stderr)."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO.")] = False,
) -> None:
    """Turn customer signals into Customer Success plays in the CRM."""
    logs.remember(logs.secret_values())  # SIGNALPLAY_* tokens, keys and secrets
    logs.configure(json_lines=log_json, level="INFO" if verbose else "WARNING")


def guard(fn: Callable[[], T]) -> T:
    """Run a command body, turning signalplay's errors into a message and exit code.

    Run a command body, turning signalplay's errors into a message and an exit code (with every
    secret value blanked: an error may quote a request).
    """
    try:
        return _wiping(fn)
    except ConfigError as exc:
        console.print(Text(logs.redact(str(exc)), style="red"))
        raise typer.Exit(2) from None
    except UnavailableError as exc:
        console.print(Text.assemble(("error: ", "red"), logs.redact(str(exc))))
        raise typer.Exit(2) from None
    except UnreachableError as exc:
        hint = (
            "check its address in signalplay.yaml (crm.host or crm.instance_url, "
            "sources.<name>.base_url, webhook.url) and that the service is up"
        )
        console.print(Text.assemble(("error: ", "red"), logs.redact(f"{exc}; {hint}")))
        raise typer.Exit(2) from None
    except LockedError as exc:
        console.print(Text.assemble(("busy: ", "yellow"), logs.redact(str(exc))))
        raise typer.Exit(3) from None
    except SignalplayError as exc:
        console.print(Text.assemble(("error: ", "red"), logs.redact(str(exc))))
        raise typer.Exit(1) from None


def _wiping(fn: Callable[[], T]) -> T:
    try:
        return fn()
    finally:
        clear_progress()


def partial(failed: int) -> None:
    """Exit 1 after a run or apply whose `failed` ops were recorded for retry (a partial run)."""
    if failed:
        console.print(
            f"partial: {failed} op(s) failed and were recorded for retry "
            "(signalplay runs; signalplay requeue)",
            highlight=False,
        )
        raise typer.Exit(1)


_progress_shown: list[bool] = [False]  # a progress line is on the terminal, to be wiped


def progress(stage: str, done: int, total: int | None) -> None:
    """Show how far long work got, on a terminal (stderr), on one line that is wiped after."""
    if sys.stderr.isatty():
        _progress_shown[0] = True
        console.print(f"  {stage}: {done}{'/' + str(total) if total else ''}", end="\r")


def clear_progress() -> None:
    """Wipe the progress line, so that no result or message is printed over its remains."""
    if _progress_shown[0]:
        _progress_shown[0] = False
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def using(project_dir: Path, use_case: Callable[[jobs.Context], T]) -> T:
    """Run one use case in the project's context, opened and then closed.

    Run one use case in the project's context (opened, then closed), with progress on the
    terminal; signalplay's errors become a message and an exit code.
    """

    def go() -> T:
        with context(project_dir) as ctx:
            return use_case(ctx)

    return guard(go)


def emit(result: Any) -> None:
    """Print a typed result's JSON (`--json`): the object the use case returned."""
    out.print_json(json.dumps(result.to_json(), default=str))


def context(project_dir: Path) -> jobs.Context:
    """Load the project and open its store, with progress on the terminal."""
    project = load_project(project_dir)
    ctx = jobs.open_context(project)
    ctx.progress = progress
    return ctx
