"""The `roofline` command: one sub-app per command module, combined here.

Heavy libraries (pandas, optuna, plotly, scipy) are imported inside the commands that use them,
so `roofline --help` and `roofline predict` start fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from roofline.cli import listing, predict
from roofline.cli._common import DEBUG

app = typer.Typer(
    name="roofline",
    help="Analytical roofline model and design-space explorer for distributed LLM inference "
         "(TTFT, TPOT, throughput, PRESERVE prefetch overlap, cost).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: typer's rich help imports rich's markdown and syntax modules, 0.12 CPU-s
    # of the 0.3 s start (issue 21); every sub-command inherits it
    rich_markup_mode=None,
)
app.add_typer(predict.app)
app.add_typer(listing.app)


def _register_optional() -> None:
    """Command modules that other parts of the project add; each is optional at import time."""
    import importlib

    for name in ("sweep", "search", "reproduce", "validate", "report", "serve"):
        try:
            module = importlib.import_module(f"roofline.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"roofline.cli.{name}":
                raise
            continue
        app.add_typer(module.app)


_register_optional()


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"roofline {version('roofline')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("roofline (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the installed version and exit.")] = False,
) -> None:
    DEBUG["on"] = debug


def _one_line_warnings() -> None:
    """Print roofline's warnings (a deprecated spec layout, a name that is not the file stem) as one
    ``warning: ...`` line on stderr, each once; other warnings keep Python's format."""
    import warnings

    from roofline.exceptions import RooflineWarning

    default_show = warnings.showwarning
    if getattr(default_show, "roofline_one_line", False):
        return

    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if not issubclass(category, RooflineWarning):
            default_show(message, category, filename, lineno, file, line)
        elif str(message) not in shown:  # once per message, whichever module warned
            shown.add(str(message))
            typer.echo(f"warning: {message}", err=True)

    show.roofline_one_line = True  # type: ignore[attr-defined]
    warnings.showwarning = show
    warnings.filterwarnings("always", category=RooflineWarning)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns every user error into one line on stderr, exit 2."""
    import sys

    _one_line_warnings()

    # click's exceptions, whether typer uses click itself or its vendored copy
    click_exceptions = sys.modules[typer.BadParameter.__module__]
    usage_error = click_exceptions.UsageError
    click_error = click_exceptions.ClickException
    abort = getattr(click_exceptions, "Abort", typer.Abort)
    try:
        code = app(args=argv, prog_name="roofline", standalone_mode=False)
    except usage_error as e:
        hint = f" (see roofline {e.ctx.command_path.split(' ', 1)[1]} --help)" if e.ctx and " " in e.ctx.command_path else ""
        typer.echo(f"error: {e.format_message()}{hint}", err=True)
        code = 2
    except click_error as e:
        typer.echo(f"error: {e.format_message()}", err=True)
        code = e.exit_code
    except abort:
        typer.echo("aborted", err=True)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
