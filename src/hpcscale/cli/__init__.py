"""The ``hpcscale`` command: a thin Typer layer over the library.

Each command parses its options, calls one library function and renders the
result. User errors (:class:`HpcscaleError`) become one line on stderr and
exit code 2 (usage/configuration) or 1 (run time); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from hpcscale._meta import __version__
from hpcscale.cli import render
from hpcscale.errors import HpcscaleError

app = typer.Typer(
    name="hpcscale",
    help="Chunked array work on SLURM clusters, from named site profiles, to Zarr.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"hpcscale {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and results.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    trust_profiles: Annotated[
        bool,
        typer.Option("--trust-profiles",
                     help="Use profiles that other users can write (recorded in the run)."),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    """Global options; they go before the command (hpcscale --json plan ...)."""
    render.OPTIONS.debug = debug
    render.OPTIONS.quiet = quiet
    render.OPTIONS.json = json
    render.OPTIONS.trust_profiles = trust_profiles


from hpcscale.cli import batch, commands, doctor, filemap, runs, site  # noqa: E402  (commands)
from hpcscale.cli import preview as preview_command  # noqa: E402
from hpcscale.cli import report as report_command  # noqa: E402

app.add_typer(site.app, name="site")
commands.register(app)
filemap.register(app)
runs.register(app)
batch.register(app)
report_command.register(app)
preview_command.register(app)
doctor.register(app)


# Typer vendors its own click; reach its exception classes through public names.
_UsageError: type[Exception] = typer.BadParameter.__mro__[1]
_ClickException: type[Exception] = typer.BadParameter.__mro__[2]


def _usage_line(err: Any) -> str:
    """Click's usage error as one line that says where help is."""
    where = err.ctx.command_path if err.ctx is not None else "hpcscale"
    message = " ".join(err.format_message().split()).replace("Value error, ", "")
    return f"{message} (see: {where} --help)"


def main() -> None:
    """Console-script entry point."""
    # standalone_mode=False: click's usage errors come here as exceptions, so
    # that a bad option value is one line like every other error, not a block.
    try:
        code = app(standalone_mode=False)
    except _UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":
            err.show()  # type: ignore[attr-defined]  # the help, as `hpcscale` alone asks
        elif render.OPTIONS.debug:
            raise
        else:
            render.error(_usage_line(err))
        sys.exit(err.exit_code)  # type: ignore[attr-defined]
    except _ClickException as err:
        render.error(" ".join(err.format_message().split()))  # type: ignore[attr-defined]
        sys.exit(err.exit_code)  # type: ignore[attr-defined]
    except typer.Abort:
        render.error("aborted")
        sys.exit(1)
    except HpcscaleError as err:
        if render.OPTIONS.debug:
            raise
        render.error(str(err))
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        render.error("interrupted; the run's jobs were cancelled")
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


def entry() -> None:
    """The ``hpcscale`` command: :func:`main`, then, when a run ended with an error or
    an interrupt while tasks of its in-process threads still run (one blocked on a
    read), exit at once. Python would wait for their I/O threads at exit, where a
    LocalCluster's worker process is simply killed; the run's record is written by then.
    """
    try:
        main()
    except SystemExit as done:
        threads = sys.modules.get("hpcscale.backends.threads")
        if done.code and threads is not None and threads.tasks_running():
            import logging
            import os

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done.code if isinstance(done.code, int) else 1)
        raise
