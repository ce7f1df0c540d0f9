"""The `gpuwatch` command: parses arguments, loads config, and hands off to one face.

Every subcommand's parser is defined here, and its handler checks the arguments, asks
`gpuwatch.assemble` for what runs (an engine's snapshot, the dashboard's clients, the daemon)
and prints the outcome. Handlers import what they need when they run, so `gpuwatch snapshot`
never loads Textual or SQLAlchemy.

Exit codes, for every subcommand: 0 ok, 1 the thing asked for could not be obtained (with the
reason on stderr), 2 a usage or config error (one line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gpuwatch import __version__, config, errors

if TYPE_CHECKING:
    from gpuwatch import series

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line value gpuwatch cannot use; printed as one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_time_values(sys.argv[1:] if argv is None else argv))
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    configure_logging(getattr(args, "log_level", None) or logging.ERROR)
    try:
        settings = _load_settings(args)
        result: int = args.handler(args, settings)
        return result
    except (config.ConfigError, UsageError) as exc:
        print(f"gpuwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except errors.Unavailable as exc:  # a StoreError among them
        print(f"gpuwatch: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `gpuwatch snapshot | head`
        return EXIT_OK


def configure_logging(level: int | str) -> None:
    """One line per record on standard error, each repeated line once per 10 minutes with a count."""
    root = logging.getLogger()
    if root.handlers:  # logging set up already (an embedding program, pytest): as basicConfig, leave it
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(errors.RepeatedLines())
    root.addHandler(handler)
    root.setLevel(level)


_TIME_OPTIONS = ("--since", "--until")


def _join_time_values(argv: Sequence[str]) -> list[str]:
    """`--since -1h` → `--since=-1h`: argparse would read `-1h` as an option of its own."""
    out: list[str] = []
    pending = False
    for arg in argv:
        if pending and arg[:1] == "-" and arg[1:2].isdigit():
            out[-1] += "=" + arg
        else:
            out.append(arg)
        pending = arg in _TIME_OPTIONS
    return out


QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "asyncio", "sqlalchemy", "urllib3")
"""Third-party loggers kept at WARNING unless `log_level = "debug"`: httpx alone logs every
Triton request at INFO (~4 lines a second per server, ~38 MB a day into journald)."""


def set_log_level(level: str) -> None:
    """gpuwatch's own loggers at `level`; the libraries' at WARNING unless `level` is debug."""
    logging.getLogger().setLevel(level.upper())
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


def _load_settings(args: argparse.Namespace) -> config.Settings:
    if getattr(args, "skip_config", False):
        return config.Settings()
    path = args.config if getattr(args, "config", None) else config.default_path()
    return config.load(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuwatch",
        description="GPU and Triton monitoring for inference nodes.",
    )
    parser.add_argument("--version", action="version", version=f"gpuwatch {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")
    _add_top(sub)
    _add_snapshot(sub)
    _add_topo(sub)
    _add_daemon(sub)
    _add_config(sub)
    _add_query(sub)
    _add_events(sub)
    return parser


def _common(p: argparse.ArgumentParser, demo: bool = True) -> None:
    p.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help=f"config file (default: ${config.CONFIG_ENV} or {config.DEFAULT_CONFIG_PATH} if present)",
    )
    if demo:
        p.add_argument(
            "--demo",
            action="store_true",
            help="replay recorded GPUs (and Triton models) instead of the real ones",
        )


# --------------------------------------------------------------------------- top


def _add_top(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "top",
        help="the live dashboard: GPUs, processes, models, history and events",
        description="The live dashboard. It reads the gpuwatch daemons named by --connect (or "
        "[top] connect; several open the cluster view), else the local daemon if one answers, "
        "else runs gpuwatch's engine in this process (--demo: over the recorded node of [demo] node, always "
        "in-process). Keys: ? for help, q to quit.",
    )
    _common(p)
    p.add_argument(
        "--connect",
        action="append",
        metavar="URL",
        help="read the gpuwatch daemon at URL, e.g. http://gpu-node-02:9477 (repeatable: several "
        "open the cluster view; replaces [top] connect); a token from [top] token_file",
    )
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="the fleet view: read every gpuwatch target of the Prometheus at URL (replaces "
        '[top] prometheus; targets picked by [top] prometheus_selector, job="gpuwatch")',
    )
    p.add_argument("--no-color", action="store_true", help="monochrome (also set by NO_COLOR)")
    p.add_argument(
        "--refresh",
        type=float,
        metavar="SECONDS",
        help="seconds between screen refreshes (default: [top] refresh_seconds, 1)",
    )
    p.set_defaults(handler=run_top)


def run_top(args: argparse.Namespace, settings: config.Settings) -> int:
    refresh = settings.top.refresh_seconds if args.refresh is None else args.refresh
    if not 0.1 <= refresh <= 60:
        raise UsageError(f"--refresh {args.refresh}: expected seconds from 0.1 to 60")
    if args.demo and args.connect:
        raise UsageError(
            "--demo runs recorded GPUs in this process: drop --connect, or drop --demo to read the daemons"
        )
    if args.prometheus and (args.demo or args.connect):
        raise UsageError(
            "--prometheus reads the fleet through Prometheus: drop --demo and --connect, or drop --prometheus"
        )
    from gpuwatch.client import connect

    try:
        prometheus = (
            None if (args.demo or args.connect) else connect.prometheus_plan(args.prometheus, settings)
        )
        plan = connect.plan(args.connect, settings, demo=args.demo) if prometheus is None else None
    except connect.DaemonUrlError as exc:
        raise UsageError(str(exc)) from None
    monochrome = args.no_color or settings.top.no_color or "NO_COLOR" in os.environ
    if prometheus is not None:
        from gpuwatch import tui
        from gpuwatch.assemble import top_fleet

        fleet = top_fleet(prometheus)
        root = logging.getLogger()
        handlers, root.handlers = root.handlers, [logging.NullHandler()]
        try:
            return tui.run([], refresh_seconds=refresh, monochrome=monochrome, fleet=fleet)
        finally:
            fleet.close()
            root.handlers = handlers
    assert plan is not None
    # Textual first: importing it while the engine's first reads run on their threads would
    # have both fight over the GIL and put off the first frame.
    from gpuwatch import tui
    from gpuwatch.assemble import top_clients

    clients = top_clients(plan, settings, demo=args.demo)

    # The terminal belongs to the dashboard while it runs: a log line on stderr would tear it.
    # What the logs would say (a lost GPU, a failing collector) is on screen and in its events.
    root = logging.getLogger()
    handlers, root.handlers = root.handlers, [logging.NullHandler()]
    try:
        return tui.run(clients, refresh_seconds=refresh, monochrome=monochrome)
    finally:
        for client in clients:
            client.close()
        root.handlers = handlers


# --------------------------------------------------------------------------- snapshot


def _add_snapshot(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "snapshot",
        help="print every GPU, process and model once",
        description="Print every GPU, process and Triton model once, in 80 columns "
        "or as JSON (docs/snapshot.md).",
    )
    _common(p)
    p.add_argument("--json", action="store_true", help="print the whole snapshot as JSON")
    p.add_argument(
        "--window",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="time between the two readings that rates and GPM need (default 0.5)",
    )
    p.add_argument(
        "--triton",
        action="append",
        metavar="URL[,METRICS_URL]",
        help="poll this Triton server: its HTTP URL, and its metrics URL if not at the HTTP port + 2 "
        "(repeatable; replaces the config's servers)",
    )
    p.set_defaults(handler=run_snapshot)


def run_snapshot(args: argparse.Namespace, settings: config.Settings) -> int:
    from gpuwatch import jsonform, model
    from gpuwatch.assemble import collect_snapshot
    from gpuwatch.text import report

    if not 0.05 <= args.window <= 60:
        raise UsageError(f"--window {args.window}: expected seconds from 0.05 to 60")
    if args.demo and args.triton:
        raise UsageError(
            "--demo replays recorded GPUs and Triton models: drop --triton, or drop --demo to poll the server"
        )
    snapshot = collect_snapshot(settings, demo=args.demo, triton_urls=args.triton, window_seconds=args.window)
    if args.json:
        json.dump(jsonform.encode_snapshot(snapshot), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report.render(snapshot))
    if not snapshot.gpus and snapshot.nvml_status:
        print(f"gpuwatch: no GPU data: {snapshot.nvml_status} (try --demo)", file=sys.stderr)
        # Triton data printed is something obtained: exit 1 only when nothing was.
        if not any(server.state == model.ServerState.UP for server in snapshot.triton):
            return EXIT_UNAVAILABLE
    return EXIT_OK


# --------------------------------------------------------------------------- topo


def _add_topo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "topo",
        help="the GPU-to-GPU matrix (NVLink, PCIe) with CPU and NUMA affinity, and each GPU's links",
        description="Print how the GPUs connect, as nvidia-smi topo -m does (NV# for # bonded "
        "NVLinks, PIX, PXB, PHB, NODE, SYS), with CPU and NUMA affinity, then each GPU's NVLink "
        "links; or all of it as JSON. --demo reads the recorded node of [demo] node.",
    )
    _common(p)
    p.add_argument("--json", action="store_true", help="print the topology and each GPU's links as JSON")
    p.set_defaults(handler=run_topo)


def run_topo(args: argparse.Namespace, settings: config.Settings) -> int:
    import dataclasses

    from gpuwatch import jsonform
    from gpuwatch.assemble import collect_snapshot
    from gpuwatch.text import topology

    # The links' traffic needs two reads; Triton has nothing to do with the matrix.
    settings = dataclasses.replace(
        settings,
        triton=dataclasses.replace(settings.triton, enabled=False),
        demo=dataclasses.replace(settings.demo, triton=False),
    )
    snapshot = collect_snapshot(settings, demo=args.demo, triton_urls=None, window_seconds=0.5)
    if args.json:
        doc = {
            "topology": jsonform.encode(snapshot.topology),
            "nvlinks": {str(g.index): jsonform.encode(g.nvlinks) for g in snapshot.gpus},
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(topology.render(snapshot))
    if snapshot.topology is None:
        print(
            f"gpuwatch: no topology: {snapshot.nvml_status or 'NVML gave none'} (try --demo)", file=sys.stderr
        )
        return EXIT_UNAVAILABLE
    return EXIT_OK


# --------------------------------------------------------------------------- daemon


def _add_daemon(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "daemon",
        help="collect continuously; serve /metrics and the JSON API",
        description="Run the engine, keep history, and serve Prometheus /metrics and the JSON API "
        f"(/api/v1/) on 127.0.0.1:{config.DEFAULT_PORT} unless told otherwise. Stops cleanly on "
        "SIGTERM or SIGINT; speaks systemd's notify protocol when NOTIFY_SOCKET is set.",
    )
    _common(p)
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to serve on (default: [daemon] listen, 127.0.0.1:{config.DEFAULT_PORT}); "
        "port 0 picks a free port, printed at start",
    )
    p.add_argument("--db", metavar="PATH", help="history database file (default: [daemon] database)")
    p.add_argument(
        "--scenario",
        metavar="NAME",
        help="with --demo, play a fault scenario: " + ", ".join(config.DEMO_SCENARIOS) + " "
        "(default: [demo] scenario); prometheus/gpuwatch.rules.yml alerts on each",
    )
    p.set_defaults(handler=run_daemon)


def run_daemon(args: argparse.Namespace, settings: config.Settings) -> int:
    from gpuwatch import assemble, daemon

    settings = daemon.with_overrides(settings, listen=args.listen, database=args.db)
    if args.scenario is not None:
        settings = assemble.with_scenario(settings, args.scenario, demo=args.demo)
    set_log_level(settings.daemon.log_level)
    try:
        runner = assemble.build_daemon(
            settings, demo=args.demo, announce=lambda line: print(line, file=sys.stderr, flush=True)
        )
    except (daemon.ExposureError, daemon.AuthConfigError) as exc:
        raise UsageError(str(exc)) from None
    except daemon.StartError as exc:
        print(f"gpuwatch: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    runner.run()
    return EXIT_OK


# --------------------------------------------------------------------------- config


def _add_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="check a config file, or print the defaults")
    csub = p.add_subparsers(metavar="ACTION")
    check = csub.add_parser(
        "check",
        help="validate a config file as the daemon does at start (listen, auth files, TLS, retention); "
        "exit 2 with the problem if bad",
    )
    check.add_argument(
        "path",
        nargs="?",
        type=Path,
        help=f"the file (default: ${config.CONFIG_ENV} or {config.DEFAULT_CONFIG_PATH})",
    )
    check.set_defaults(handler=run_config_check, skip_config=True)
    defaults = csub.add_parser("defaults", help="print a config.toml with every setting at its default")
    defaults.set_defaults(handler=run_config_defaults, skip_config=True)


def run_config_check(args: argparse.Namespace, settings: config.Settings) -> int:
    path = args.path or config.default_path()
    if path is None:
        raise UsageError(f"no config file to check: name one, or create {config.DEFAULT_CONFIG_PATH}")
    from gpuwatch import daemon

    settings = config.load(path)
    try:
        daemon.check(settings)  # the very checks `gpuwatch daemon` makes at start
    except (daemon.ExposureError, daemon.AuthConfigError) as exc:
        raise UsageError(str(exc)) from None
    print(f"{path}: ok")
    return EXIT_OK


def run_config_defaults(args: argparse.Namespace, settings: config.Settings) -> int:
    sys.stdout.write(config.render_defaults())
    return EXIT_OK


# --------------------------------------------------------------------------- history: query, events
#
# Both read a `series.History`. Today that is the database file, opened read-only
# (`_history_source`); a `--connect URL` asking a running daemon's JSON API would return another
# `History` from that one function, and the rest stays as it is.


def _add_history_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="PATH", help="config file (for where the database is)")
    p.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="the database file (default: [daemon] database, else STATE_DIR/gpuwatch.db)",
    )
    p.add_argument(
        "--since",
        default="1h",
        metavar="WHEN",
        help="start: 15m, 24h, 30d ago (or -15m, as the API writes it), 2026-11-24T03:12, or Unix seconds",
    )
    p.add_argument("--until", default="now", metavar="WHEN", help="end, written like --since (default now)")
    p.add_argument("--json", action="store_true", help="print JSON (the JSON API's encoding)")
    p.add_argument("--utc", action="store_true", help="print times in UTC instead of local time")


def _add_query(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "query",
        help="print the history of one series from the database",
        description="Print a series (a metric name without the gpuwatch_ prefix) over a time range, "
        "downsampled to at most --points buckets of mean, min and max.",
    )
    p.add_argument("series", nargs="?", metavar="SERIES", help="e.g. gpu_power_watts (see --list)")
    p.add_argument("--list", action="store_true", help="list every series and exit")
    p.add_argument("--gpu", type=int, metavar="N", help="only GPU N")
    p.add_argument("--server", metavar="S", help="only Triton server S")
    p.add_argument("--model", metavar="NAME", help="only model NAME")
    p.add_argument("--version", dest="model_version", metavar="V", help="only model version V")
    p.add_argument("--points", type=int, default=60, metavar="N", help="at most N points per series (60)")
    _add_history_source(p)
    p.set_defaults(handler=run_query)


def _add_events(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "events",
        help="print events (XIDs, lost GPUs, model state changes, …) from the database",
        description="Print the events of a time range, newest first.",
    )
    p.add_argument("--kind", action="append", metavar="K", help="only events of kind K (repeatable)")
    p.add_argument("--limit", type=int, default=1000, metavar="N", help="at most N events (1000)")
    _add_history_source(p)
    p.set_defaults(handler=run_events)


def _history_source(args: argparse.Namespace, settings: config.Settings) -> series.History:
    """Where history comes from: the database file, read-only. Its errors are `StoreError`s,
    which `main` prints as one line with exit 1."""
    from gpuwatch.store import open_history

    return open_history(args.db or settings.database_path)


def _window(args: argparse.Namespace, now: float) -> tuple[float, float]:
    from gpuwatch import timespec

    moments = []
    for option, text in (("--since", args.since), ("--until", args.until)):
        try:
            moments.append(timespec.parse_moment(text, now))
        except ValueError as exc:
            raise UsageError(f"{option} {text}: {exc}") from None
    start, end = moments
    if start >= end:
        raise UsageError(f"--since {args.since} is not before --until {args.until}")
    return start, end


_LABEL_OPTIONS = {"gpu": "--gpu", "server": "--server", "model": "--model", "version": "--version"}


def _checked_query(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """The series named on the command line and the label filters its options give, checked
    as /api/v1/history checks them (`series.check_query`)."""
    from gpuwatch import series

    name = args.series.removeprefix("gpuwatch_")
    given = {
        "gpu": None if args.gpu is None else str(args.gpu),
        "server": args.server,
        "model": args.model,
        "version": args.model_version,
    }
    match = {label: value for label, value in given.items() if value is not None}
    try:
        series.check_query(name, match)
    except series.UnknownSeriesError:
        import difflib

        close = difflib.get_close_matches(name, [f.name for f in series.CATALOG], n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else "see gpuwatch query --list"
        raise UsageError(f"unknown series {args.series!r}: {hint}") from None
    except series.LabelError as exc:
        options = ", ".join(_LABEL_OPTIONS[label] for label in exc.figure.labels if label in _LABEL_OPTIONS)
        raise UsageError(
            f"{_LABEL_OPTIONS[exc.label]} does not apply to {name}, a {exc.figure.entity.name} series "
            f"(use {options})"
        ) from None
    return name, match


def run_query(args: argparse.Namespace, settings: config.Settings) -> int:
    import time

    from gpuwatch import jsonform
    from gpuwatch.text import history_report

    if args.list:
        sys.stdout.write(history_report.render_catalog())
        return EXIT_OK
    if not args.series:
        raise UsageError("name a series, e.g. gpuwatch query gpu_power_watts (all of them: --list)")
    name, match = _checked_query(args)
    if not 1 <= args.points <= 100_000:
        raise UsageError(f"--points {args.points}: expected a number from 1 to 100000")
    start, end = _window(args, time.time())
    found = _history_source(args, settings).query(name, match, start, end, args.points)
    data = [d for d in found if d.points]
    if args.json:
        json.dump(
            jsonform.encode_history(name, match, start=start, end=end, points=args.points, results=data),
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    elif data:
        sys.stdout.write(history_report.render_series(name, data, start, end, utc=args.utc))
    if not data:
        where = "".join(f" {_LABEL_OPTIONS[k]} {v}" for k, v in match.items())
        print(f"gpuwatch: no data for {name}{where} since {args.since} (until {args.until})", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


def _output_width() -> int | None:
    """The terminal's width when stdout is one (lines cut to fit it), None for a pipe or a file
    (whole lines, for grep)."""
    if not sys.stdout.isatty():
        return None
    import shutil

    from gpuwatch.text import history_report

    return shutil.get_terminal_size((history_report.WIDTH, 24)).columns


def run_events(args: argparse.Namespace, settings: config.Settings) -> int:
    import time

    from gpuwatch import jsonform, model
    from gpuwatch.text import history_report

    kinds = None
    if args.kind:
        known = {k.value: k for k in model.EventKind}
        unknown = [k for k in args.kind if k not in known]
        if unknown:
            raise UsageError(f"--kind {unknown[0]}: expected one of {', '.join(known)}")
        kinds = [known[k] for k in args.kind]
    if not 1 <= args.limit <= 1_000_000:
        raise UsageError(f"--limit {args.limit}: expected a number from 1 to 1000000")
    start, end = _window(args, time.time())
    events = _history_source(args, settings).events(start, end, kinds, args.limit)
    if args.json:
        json.dump(jsonform.encode_events(start, end, events), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif events:
        sys.stdout.write(history_report.render_events(events, utc=args.utc, width=_output_width()))
    if not events:
        which = f" of kind {', '.join(args.kind)}" if args.kind else ""
        print(f"gpuwatch: no events{which} since {args.since} (until {args.until})", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK
