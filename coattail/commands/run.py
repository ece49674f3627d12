"""``coattail run``, ``coattail runs`` and ``coattail demo``: whole replays through the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from coattail.commands.package import PackageOption
from coattail.commands.stack import cli_errors, load_config, parse_sets
from coattail.run import Via
from core.errors import CoattailError, ConfigError
from infra.stack import KinesisEngine
from pipeline.config import ProfileName, TierName

console = Console()

DEMO_SCENARIO = "whale-day"
DEMO_SCENARIOS: dict[str, str] = {"small": DEMO_SCENARIO, "medium": "medium-day", "large": "large-day"}
"""The preset each tier's demo plays: its modules' patterns, labelled."""
DEMO_DURATION = "1h"
DEMO_SCALE = 0.25
DEMO_SEED = 7
# 60x plays the demo hour in a minute: paced, so the report shows throughput over time and a real
# sent -> alert latency distribution (at max speed the whole tape lands in one micro-batch).
DEMO_SPEED = "60x"
DEMO_SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT"
DEMO_EXCHANGES = "binance,coinbase"


def _speed(text: str) -> float | None:
    from replay.clock import parse_speed

    return parse_speed(text)


def run(
    tapes: Annotated[
        list[Path] | None, typer.Argument(help="Tape directories to replay (merged by event time).")
    ] = None,
    days: Annotated[
        list[str] | None,
        typer.Option(
            "--day",
            help="Also replay archive days: SOURCE:SYMBOL:DAY like binance:BTCUSDT:2024-01-01, or "
            "binance/usdm:BTCUSDT,ETHUSDT:2024-01-01..2024-01-03 (fetched when missing; repeatable).",
        ),
    ] = None,
    tier: Annotated[TierName, typer.Option("--tier", help="Config tier.")] = "small",
    profile: Annotated[
        ProfileName, typer.Option("--profile", help="lite (SQLite catalog) or mirror (Glue + S3).")
    ] = ("lite"),
    speed: Annotated[str, typer.Option("--speed", help="1x, 10x, 60x ... or max.")] = "max",
    faults: Annotated[Path | None, typer.Option("--faults", help="Fault-injection spec (YAML).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the fault injection.")] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", help="Config override key=value (repeatable).")
    ] = None,
    golden: Annotated[
        Path | None, typer.Option("--golden", help="Compare the alerts with this golden file.")
    ] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories go.")] = Path("runs"),
    name: Annotated[str, typer.Option("--name", help="Suffix of the run id.")] = "run",
    via: Annotated[
        Via,
        typer.Option(
            "--via",
            help="kinesis: the replay puts on Kinesis; ws: the replay serves exchange WebSockets and the "
            "production producer (config/producer.yaml) puts on Kinesis.",
        ),
    ] = "kinesis",
    kinesis: Annotated[
        KinesisEngine | None,
        typer.Option(
            "--kinesis",
            help="Kinesis engine to start, or to require of a running stack: moto or kinesis-mock "
            "(default: a running stack as it is, else moto).",
        ),
    ] = None,
    keep_resources: Annotated[
        bool,
        typer.Option(
            "--keep-resources",
            help="Keep the run's stream, alerts table and namespace (`coattail gc` removes them).",
        ),
    ] = False,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Serve the dashboard beside the run (its URL is printed) and, while the "
            "stack is up, after it until Ctrl-C.",
        ),
    ] = False,
    dashboard_port: Annotated[
        int, typer.Option("--dashboard-port", help="The --live dashboard's port on 127.0.0.1 (0: free).")
    ] = 0,
    cluster: Annotated[
        bool,
        typer.Option("--cluster", help="Submit the job package (--package) to the local Spark cluster "
                     "(`coattail cluster up`) instead of running the pipeline in this process."),
    ] = False,
    package: PackageOption = None,
) -> None:
    """Replay tapes through the pipeline on the local stack, validate, and write a run directory + report."""
    from coattail.commands.tape import day_tapes
    from coattail.run.orchestrate import RunRequest

    with cli_errors():
        every = [*(tapes or []), *day_tapes(days or [], runs_root / "tapes")]
        if not every:
            raise typer.BadParameter("give tape directories, or --day specs to fetch")
        master = _local_cluster(package) if cluster else None
        request = RunRequest(
            tapes=tuple(every),
            tier=tier,
            profile=profile,
            speed=_speed(speed),
            faults=faults,
            seed=seed,
            overrides=parse_sets(sets),
            runs_root=runs_root,
            golden=golden,
            name=name,
            via=via,
            kinesis=kinesis,
            keep_resources=keep_resources,
            cluster=master,
            package=package,
        )
        if live:
            _execute_live(request, dashboard_port)
        else:
            _execute(request)


def _local_cluster(package: Path | None) -> str:
    """The master of the healthy local cluster, for ``--cluster``; what to do when there is none."""
    from infra import cluster

    if package is None:
        raise ConfigError("--cluster submits the job package: build it with `coattail package --tier T --out "
                          "DIR` and pass --package DIR")
    report = cluster.status(load_config().runtime.state_dir)
    if not report.healthy or report.state is None:
        raise ConfigError(f"--cluster needs the local Spark cluster: {report.summary()}")
    return report.state.master_url


def demo(
    duration: Annotated[str, typer.Option("--duration", help="Market time to simulate.")] = DEMO_DURATION,
    scale: Annotated[
        float, typer.Option("--scale", help="Volume multiplier of the synthetic market.")
    ] = DEMO_SCALE,
    seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = DEMO_SEED,
    speed: Annotated[str, typer.Option("--speed", help="1x, 10x, 60x ... or max.")] = DEMO_SPEED,
    faults: Annotated[
        Path | None, typer.Option("--faults", help="Also inject transport faults (YAML).")
    ] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories go.")] = Path("runs"),
    tier: Annotated[
        TierName,
        typer.Option(
            "--tier",
            help="small (whale-day), medium (medium-day, MOD-005..007) or large (large-day, MOD-008/009).",
        ),
    ] = "small",
) -> None:
    """Generate a synthetic `whale-day` market and run it end to end (the README's main command)."""
    from coattail.run.orchestrate import RunRequest

    with cli_errors():
        scenario = DEMO_SCENARIOS.get(tier)
        if scenario is None:
            raise typer.BadParameter(
                f"the demo runs the tiers {', '.join(DEMO_SCENARIOS)}", param_hint="--tier"
            )
        name = scenario if tier == "small" else f"{scenario}-{tier}"
        tape = _demo_tape(
            runs_root / "tapes" / f"{name}-{duration}-x{scale:g}-s{seed}", duration, scale, seed, tier
        )
        request = RunRequest(
            tapes=(tape,), tier=tier, speed=_speed(speed), faults=faults, runs_root=runs_root, name="demo"
        )
        _execute(request)


def runs(
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories are.")] = Path("runs"),
) -> None:
    """List the runs, oldest first."""
    from coattail.run.rundir import list_runs

    table = Table(Column("run", no_wrap=True), "events", "alerts", "ev/s", "event p99 ms", "result")
    for r in list_runs(runs_root):
        if not r.has("summary.json"):
            table.add_row(r.run_id, "", "", "", "", "[yellow]unfinished[/yellow]")
            continue
        s = r.read_json("summary.json")
        problems = []
        if not s["labels"]["ok"]:
            problems.append(f"{s['labels']['misses']} labels missed")
        if not s["reference"]["ok"]:
            problems.append(f"{s['reference']['differences']} reference diffs")
        if s.get("golden") and not s["golden"]["ok"]:
            problems.append("golden differs")
        table.add_row(
            r.run_id,
            f"{s.get('events', 0):,}",
            str(s.get("alerts", 0)),
            _num(s.get("throughput_eps")),
            _headline_p99(s.get("latency_ms", {})),
            "[green]pass[/green]" if not problems else "[red]" + ", ".join(problems) + "[/red]",
        )
    console.print(table)


def _generator_digest() -> str:
    """What a generated tape depends on besides its parameters: the generator's code and presets, and the
    config (thresholds, instruments, tokens): a short digest of those files."""
    import hashlib

    import sim
    from pipeline.config import default_config_dir

    digest = hashlib.sha256()
    for root, pattern in ((Path(sim.__file__).parent, "**/*.py"), (Path(sim.__file__).parent, "**/*.yaml"),
                          (default_config_dir(), "**/*.yaml")):  # fmt: skip
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _demo_tape(out: Path, duration: str, scale: float, seed: int, tier: TierName = "small") -> Path:
    """Generate the tier's demo tape (deterministic: an existing one with the same parameters, generated by
    the same generator code, presets and config, is reused; one from an older revision is generated
    again)."""
    from core.tape import MANIFEST, Tape
    from core.timefmt import parse_duration, parse_time
    from pipeline.config import ConfigLoader
    from sim.generator import GenerateSpec, generate
    from sim.scenario import load_scenario

    inputs = f"generated from sim and config {_generator_digest()}"
    if (out / MANIFEST).is_file():
        try:
            if inputs in Tape.open(out).manifest.origin:
                return out
        except CoattailError:
            pass  # a damaged cached tape is generated again like a stale one

    scenario = DEMO_SCENARIOS[tier]
    spec = GenerateSpec(
        scenario=load_scenario(scenario),
        symbols=tuple(DEMO_SYMBOLS.split(",")),
        exchanges=tuple(DEMO_EXCHANGES.split(",")),
        start_us=parse_time("2026-01-01T00:00Z", "--start"),
        duration_us=parse_duration(duration),
        seed=seed,
        scale=scale,
    )
    command = f"coattail sim generate --scenario {scenario} --duration {duration} --scale {scale:g}"
    command += f" --seed {seed}" + ("" if tier == "small" else f" --tier {tier}")
    with console.status(f"generating the {scenario} tape ({duration}, scale {scale:g})"):
        manifest = generate(spec, ConfigLoader().load(tier), out, overwrite=True, origin=[command, inputs])
    rows = ", ".join(f"{n:,} {k}s" for k, n in manifest.rows.items())
    console.print(f"demo tape {out}: {rows}, {len(manifest.labels)} labels")
    return out


def _execute(request: Any, observer: Any = None) -> None:
    from coattail.run.orchestrate import execute
    from coattail.run.progress import RichSteps

    with RichSteps(Console(stderr=True)) as steps:
        result = execute(request, steps, observer=observer)
    print_summary(result.judgement.summary, result.run.path)
    unlisted = result.run.read_json("run.json").get("unlisted_instruments", [])
    if unlisted:
        console.print(
            f"[yellow]no USD notional for {', '.join(unlisted)}: config/instruments.yaml does not list "
            "them (add them to get whale and volume alerts on them)[/yellow]"
        )
    if not result.ok:
        raise typer.Exit(1)


def _execute_live(request: Any, port: int) -> None:
    """The run with the dashboard served beside it. The run keeps its resources while the dashboard
    shows them, and removes them when Ctrl-C stops it (unless ``--keep-resources``)."""
    import contextlib
    import dataclasses
    import threading

    from coattail.dashboard.live import LiveRun
    from coattail.dashboard.server import DIST, Backend, make_dashboard_server, url
    from coattail.run.orchestrate import remove_own
    from coattail.run.progress import Steps

    live = LiveRun()
    backend = Backend(live=live)
    server = make_dashboard_server(backend, port)
    threading.Thread(target=server.serve_forever, name="dashboard", daemon=True).start()
    if not (DIST / "index.html").is_file():
        console.print(f"[yellow]the dashboard is not built ({DIST}); `make install` builds it[/yellow]")
    console.print(f"dashboard: {url(server)}", highlight=False)
    failed: typer.Exit | None = None
    try:
        try:
            _execute(dataclasses.replace(request, keep_resources=True), live)
        except typer.Exit as e:  # a failed check: the dashboard still shows the run, then the exit code
            failed = e
        api, config = backend.api(), live.config
        if api is None or config is None or api.store.table_state()["status"] != "ACTIVE":
            console.print(
                "the run stopped its own stack: the dashboard stops with it (`coattail up` first keeps it)"
            )
        else:
            console.print(f"run finished; the dashboard stays on {url(server)} until Ctrl-C", highlight=False)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
            if not request.keep_resources:
                remove_own(config, Steps())
    finally:
        server.shutdown()
        server.server_close()
    if failed is not None:
        raise failed


def _headline_p99(latency: dict[str, Any]) -> str:
    """A run's per-event p99 to results; ``queue`` at max speed, where it measures the queue."""
    if latency.get("queueing"):
        return "queue"
    return _num(latency.get("stages", {}).get("results", {}).get("p99"))


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def print_summary(s: dict[str, Any], path: Path) -> None:
    """The final table of a run."""
    table = Table(title=f"run {s['run_id']}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    latency = s.get("latency_ms", {})
    table.add_row("events sent", f"{s['events']:,}")
    table.add_row(
        "records in / valid / quarantined", f"{s['records_in']:,} / {s['valid']:,} / {s['quarantined']:,}"
    )
    table.add_row("throughput (end to end)", f"{_num(s.get('throughput_eps'))} events/s")
    memory = s.get("memory")
    if memory:
        groups = ", ".join(f"{g} {mib:,.0f}" for g, mib in memory["peak_by_group_mib"].items())
        table.add_row("peak memory (RSS, MiB)", f"{memory['peak_total_mib']:,.0f} in all; peaks: {groups}")
    from coattail.run.latency import STAGES

    if latency.get("queueing"):
        table.add_row("latency", "not measured at max speed: the figures below are queueing behind the tape")
    for stage, pct in latency.get("stages", {}).items():
        table.add_row(
            f"{'queueing' if latency.get('queueing') else 'latency'} {stage}: {STAGES[stage]}",
            f"p50 {_num(pct.get('p50'))} ms, p99 {_num(pct.get('p99'))} ms, "
            f"p99.9 {_num(pct.get('p99.9'))} ms, max {_num(pct.get('max'))} ms",
        )
    for stage, pct in s.get("stage_latency_ms", {}).items():
        table.add_row(f"latency {stage}", f"p50 {_num(pct.get('p50'))} ms, p99 {_num(pct.get('p99'))} ms")
    by_detector = s.get("alerts_by_detector", {})
    table.add_row("alerts", f"{s['alerts']} (" + ", ".join(f"{d}: {n}" for d, n in by_detector.items()) + ")")
    for detector, score in s.get("scores", {}).items():
        table.add_row(
            f"  {detector}",
            f"precision {_pct(score['precision'])}, recall {_pct(score['recall'])} "
            f"({score['alerts']} alerts, {score['labels']} labels)",
        )
    labels = s["labels"]
    if not labels["count"]:
        verdict = "none (the tape has no labels)"
    elif labels["ok"]:
        verdict = f"[green]all {labels['count']} hit[/green]"
    else:
        verdict = f"[red]{labels['misses']} of {labels['count']} missed[/red]"
    table.add_row("labels", verdict)
    reference = s["reference"]
    table.add_row(
        "reference implementation",
        "[green]agrees[/green]" if reference["ok"] else f"[red]{reference['differences']} differences[/red]",
    )
    if s.get("golden"):
        table.add_row("golden file", "[green]matches[/green]" if s["golden"]["ok"] else "[red]differs[/red]")
    table.add_row("result", "[green]PASS[/green]" if s.get("ok") else "[red]FAIL[/red]")
    console.print(table)
    console.print(f"run directory: {path}\nreport: {path / 'report.html'}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    """Attach ``run``, ``runs`` and ``demo``."""
    app.command("run")(run)
    app.command("runs")(runs)
    app.command("demo")(demo)
