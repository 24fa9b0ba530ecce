"""Entry point: global options, command groups, and the mapping of failures to exit codes.

Exit codes: 0 all good, 1 the operation ran and found failed nodes, 2 bad usage or
bad input, 130 interrupted.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from urllib.parse import unquote, urlsplit

import typer

from clusterctl import __version__
from clusterctl.cli import bmc as bmc_cli
from clusterctl.cli import burnin as burnin_cli
from clusterctl.cli import check as check_cli
from clusterctl.cli import dashboard as dashboard_cli
from clusterctl.cli import inventory as inventory_cli
from clusterctl.cli import lab as lab_cli
from clusterctl.cli import maintain as maintain_cli
from clusterctl.cli import provision as provision_cli
from clusterctl.cli import state as state_cli
from clusterctl.cli import validate as validate_cli
from clusterctl.cli.context import Settings, default_state_url
from clusterctl.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ClusterctlError

# The backslash keeps Rich from reading "[default: ...]" as markup and dropping it.
STATE_HELP = (
    "State store URL: sqlite:///PATH or postgresql://USER@HOST/DB \\[default: SQLite in ~/.local/state]. "
    "Keep a PostgreSQL password off the command line, where ps shows it to every local user: "
    "set CLUSTERCTL_STATE, or put the password in ~/.pgpass."
)


class Output(StrEnum):
    table = "table"
    json = "json"


app = typer.Typer(
    name="clusterctl",
    help="Take a GPU site from racked hardware to an accepted, burned-in training cluster.",
    epilog="Example: clusterctl inventory check inventories/site.yaml --output json",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
    add_completion=False,
)
app.add_typer(inventory_cli.app, name="inventory")
app.add_typer(bmc_cli.app, name="bmc")
app.add_typer(lab_cli.app, name="lab")
state_cli.register(app)
provision_cli.register(app)
validate_cli.register(app)
burnin_cli.register(app)
check_cli.register(app)
dashboard_cli.register(app)
maintain_cli.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clusterctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    output: Output = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log detail: -v info, -vv debug "
                                "(and the SSH/HTTP libraries' info), -vvv the libraries' debug too."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and results."),
    log_json: bool = typer.Option(False, "--log-json", help="Logs as JSON lines on stderr."),
    state: str = typer.Option(None, "--state", envvar="CLUSTERCTL_STATE", show_default=False, help=STATE_HELP),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    from clusterctl import log

    verbosity = -1 if quiet else verbose
    ctx.obj = Settings(output=output.value, verbosity=verbosity, state_url=state or default_state_url())
    log.setup(verbosity, json_lines=log_json)
    if state:
        # By name: typer ships its own copy of click, whose ParameterSource is not click's.
        source = ctx.get_parameter_source("state")
        _guard_state_password(state, typed=getattr(source, "name", None) == "COMMANDLINE")


def _guard_state_password(url: str, typed: bool) -> None:
    """Keep the state store's password out of every output, and out of `ps` when it was typed as --state.

    The password is registered for redaction before anything can print it (the store
    registers it too, but only once it parses the URL). Typed on the command line, it is also
    in /proc/PID/cmdline, which every local user can read: the process title is rewritten
    without it as soon as the CLI runs, and a warning says what to use instead.
    """
    from clusterctl import log

    passwords = _url_passwords(url)
    for password in passwords:
        log.redact(password)
    if not passwords or not typed:
        return
    _hide_from_process_title(url, passwords)
    log.get("cli").warning(
        "--state carries a password, which other local users can read with ps and your shell keeps in its "
        "history; set CLUSTERCTL_STATE or put the password in ~/.pgpass instead"
    )


def _url_passwords(url: str) -> set[str]:
    """The passwords in a URL (user:PASS@ or ?password=), as typed and percent-decoded: either may be echoed."""
    try:
        parts = urlsplit(url)
        typed = [parts.password] if parts.password else []
    except ValueError:
        return set()
    pairs = (pair.partition("=") for pair in parts.query.split("&"))
    typed += [value for key, _, value in pairs if key == "password" and value]
    return {form for raw in typed for form in (raw, unquote(raw))}


def _hide_from_process_title(url: str, passwords: set[str]) -> None:
    """Rewrite the process's command line as `ps` shows it, the state URL's password masked.

    Only when this process's own arguments carry the URL (the CLI also runs in-process, in
    tests). The thread name (`comm`, what `pgrep` matches) is kept: setproctitle would set
    it to the title's first 15 characters.
    """
    if not any(arg in (url, f"--state={url}") for arg in sys.argv[1:]):
        return
    try:
        import setproctitle
    except ImportError:  # an install without it still runs; the warning still says what to do
        return
    masked = url
    for password in passwords:
        masked = masked.replace(f":{password}@", ":***@").replace(f"password={password}", "password=***")
    title = [arg.replace(url, masked) if arg in (url, f"--state={url}") else arg for arg in sys.orig_argv]
    name = setproctitle.getthreadtitle()
    setproctitle.setproctitle(" ".join(title))
    setproctitle.setthreadtitle(name)


# Global options that ops type after the command (`clusterctl status -o json`); click only
# accepts them before it, so they are moved to the front. These names are reserved for the
# whole CLI: no command defines an option with the same spelling.
_GLOBAL_WITH_VALUE = {"--output", "-o", "--state"}
_GLOBAL_FLAGS = {"--verbose", "-v", "-vv", "-vvv", "--quiet", "-q", "--log-json"}


def hoist_global_options(argv: list[str]) -> list[str]:
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if name in _GLOBAL_WITH_VALUE and "=" in arg:
            front.append(arg)
        elif arg in _GLOBAL_WITH_VALUE and i + 1 < len(argv):
            front.extend(argv[i : i + 2])
            i += 1
        elif arg in _GLOBAL_FLAGS:
            front.extend(["-v"] * (len(arg) - 1) if arg.startswith("-vv") else [arg])
        else:
            rest.append(arg)
        i += 1
    return front + rest


def run(argv: list[str] | None = None) -> int:
    """Run the CLI. With `argv` given (tests), return the exit code instead of exiting."""
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name="clusterctl")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_BAD_INPUT)
    except ClusterctlError as exc:
        _print_error(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        code = EXIT_INTERRUPTED
    if argv is None:
        sys.exit(code)
    return code


def _print_error(exc: ClusterctlError) -> None:
    from clusterctl.log import scrub

    sys.stderr.write(scrub(f"error: {exc}") + "\n")


if __name__ == "__main__":
    run()
