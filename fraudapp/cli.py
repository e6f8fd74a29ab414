"""`flask` commands: history import and simulation, training, the model registry, tokens, demo."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time

import click
from flask import Flask, current_app

from .ml.metrics import finite
from .ml.simulate import simulate, with_text_ids
from .ml.training import Windows
from .services import accounts, demo, tokens
from .services.distribution import catalog, releases
from .services.monitoring import alerts, learning
from .services.serving import ModelUnavailable
from .services.training import runs, trainer
from .services.training.train import latest_windows, train_and_publish
from .services.transactions import files, history


@click.command("import-transactions")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_transactions_command(path: str) -> None:
    """Import a Handbook-format CSV (.csv or .csv.gz); TX_FRAUD becomes an imported label."""
    try:
        frame = history.read_transactions(path)
    except history.ImportRefused as exc:
        raise click.ClickException(f"{path}: {exc}; nothing was imported") from exc
    with click.progressbar(length=len(frame), label="Importing", file=sys.stderr) as bar:
        result = history.import_frame(frame, bar.update)
    click.echo(
        f"{result.rows} rows read, {result.inserted} added, {result.skipped} already "
        f"present, {result.labels} labels"
    )


@click.command("score-file")
@click.argument("source", metavar="IN", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", metavar="OUT", type=click.Path(dir_okay=False, writable=True))
@click.option("--store", is_flag=True, help="Also store the rows in the history, with consent.")
def score_file_command(source: str, out: str, store: bool) -> None:
    """Score a Handbook-format CSV (.csv or .csv.gz, in time order) into OUT (.gz: compressed).

    Each row sees the stored history and the file's earlier rows. Without --store nothing is kept.
    """
    bar = click.progressbar(length=1, label="Scoring", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.length = total
        bar.update(done - bar.pos)

    started = time.perf_counter()
    try:
        with bar:
            summary = files.score_file(source, out, store, progress)
    except files.FileRefused as exc:
        raise click.ClickException(f"{source}: {exc}; nothing was written or stored") from exc
    except ModelUnavailable as exc:
        raise click.ClickException(f"no model to score with: {exc}") from exc
    click.echo(
        f"{summary.rows} rows scored by model {summary.model_version}, {summary.flagged} flagged "
        f"at threshold {summary.threshold:.4f}, {summary.stored} stored; written to {out}"
    )
    seconds = time.perf_counter() - started
    click.echo(f"{summary.rows} rows in {seconds:.2f} s: {summary.rows / seconds:,.0f} rows/s")


@click.command("simulate")
@click.option("--customers", default=500, show_default=True, help="Number of customers.")
@click.option("--terminals", default=1000, show_default=True, help="Number of terminals.")
@click.option("--days", default=60, show_default=True, help="Days of history.")
@click.option("--start", default=None, help="First day (YYYY-MM-DD); default: DAYS before today.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a Handbook-format CSV instead of importing.",
)
@click.option(
    "--text-ids",
    is_flag=True,
    help="Name customers and terminals like card tokens and merchant ids (cus_000042, MID-00042).",
)
def simulate_command(customers, terminals, days, start, seed, output, text_ids) -> None:
    """Generate realistic transactions with the three Handbook fraud scenarios."""
    start = start or (dt.date.today() - dt.timedelta(days=days)).isoformat()
    frame = simulate(customers, terminals, start, days, random_state=seed)
    if text_ids:
        frame = with_text_ids(frame)
    if output:
        frame.to_csv(output, index=False)
        click.echo(f"{len(frame)} transactions written to {output}")
        return
    frame["TRANSACTION_ID"] = f"sim{seed}-{start}-" + frame["TRANSACTION_ID"].astype(str)
    result = history.import_handbook_frame(frame, source_name="simulate")
    click.echo(f"{result.inserted} transactions simulated and added ({result.labels} labels)")


@click.command("train")
@click.option(
    "--train-start",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="First training day; default: the latest windows that fit the history.",
)
@click.option("--train-days", default=7, show_default=True, type=click.IntRange(1, 365))
@click.option("--delay-days", default=7, show_default=True, type=click.IntRange(0, 365))
@click.option("--test-days", default=7, show_default=True, type=click.IntRange(1, 365))
@click.option("--promote", is_flag=True, help="Serve the new version at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def train_command(train_start, train_days, delay_days, test_days, promote, as_json) -> None:
    """Train on the stored history with the Handbook protocol and publish a model version."""
    windows = (
        Windows(train_start.date(), train_days, delay_days, test_days)
        if train_start
        else latest_windows(train_days, delay_days, test_days)
    )
    try:
        version, result = train_and_publish(windows, promote=promote)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = {"version": version, "promoted": releases.current() == version, **result.summary()}
    if as_json:
        click.echo(json.dumps(finite(summary)))
        return
    for key, value in summary.items():
        click.echo(f"{key:>12}  {value:.4f}" if isinstance(value, float) else f"{key:>12}  {value}")


@click.group("models")
def models_group() -> None:
    """List, promote, roll back and shadow model versions."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def models_list(as_json: bool) -> None:
    """Every version with its test metrics; the serving one is marked *, the challenger in
    shadow ~."""
    current, challenger = releases.current(), releases.challenger()
    rows = [
        {
            "version": row["version"],
            "current": row["version"] == current,
            "challenger": row["version"] == challenger,
            "created_at": row["created_at"],
            "threshold": row["threshold"],
            **{k: row["metrics"].get(k) for k in ("auc", "ap", "cp_at_100", "f1")},
        }
        for row in reversed(catalog.versions())
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        mark = "*" if row["current"] else "~" if row["challenger"] else " "
        click.echo(
            f"{mark} {row['version']:<6} {row['created_at']}  AP {_num(row['ap'])}  "
            f"AUC {_num(row['auc'])}  F1 {_num(row['f1'])}  threshold {_num(row['threshold'])}"
        )


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


@models_group.command("promote")
@click.argument("version")
def models_promote(version: str) -> None:
    """Serve VERSION (checked loadable first)."""
    try:
        runs.promote(version, "cli")
    except runs.RunError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{version} is now serving")


@models_group.command("shadow")
@click.argument("version")
def models_shadow(version: str) -> None:
    """Score every prediction with VERSION too, on every node, never deciding with it."""
    try:
        runs.start_shadow(version, "cli")
    except runs.RunError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{version} is in shadow of {releases.current()}")


@models_group.command("unshadow")
def models_unshadow() -> None:
    """End the shadow: predictions are scored by the serving version alone."""
    try:
        version = runs.stop_shadow("cli")
    except runs.RunError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{version} is no longer in shadow")


@models_group.command("rollback")
def models_rollback() -> None:
    """Serve the version that served before the current one."""
    try:
        previous = runs.rollback("cli")
    except runs.RunError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"rolled back to {previous}")


@click.command("retrain")
def retrain_command() -> None:
    """Queue a training run for the trainer (or show the one already queued or running)."""
    run = runs.request_run("cli", "cli")
    click.echo(f"run {run.id} is {run.status}")


@click.command("trainer")
@click.option("--once", is_flag=True, help="Exit when no queued run is left.")
def trainer_command(once: bool) -> None:
    """Work queued training runs one at a time, at low CPU priority."""
    if current_app.config["ROLE"] == "web":
        raise click.ClickException(
            "this is a prediction node (FRAUDAPP_ROLE=web): run the trainer with "
            "FRAUDAPP_ROLE=trainer (or all)"
        )
    nice = current_app.config["TRAINER_NICE"]
    if nice:
        os.nice(nice)
    done = trainer.work(once, current_app.config["TRAINER_POLL_SECONDS"], log=click.echo)
    click.echo(f"trainer: {done} run(s) done")


@click.command("create-api-token")
@click.argument("name")
@click.option(
    "--all-predictions",
    is_flag=True,
    help="May give feedback on every stored prediction, not only on its own.",
)
def create_api_token_command(name: str, all_predictions: bool) -> None:
    """Create a bearer token for the JSON API; it is printed once, as the last line."""
    scope = "all" if all_predictions else "own"
    try:
        token = tokens.create_token(name, scope)
    except tokens.TokenExists as exc:
        raise click.ClickException(f"a token named {name!r} exists already") from exc
    click.echo(f"API token for {name}, scope {scope} (store it now; it is not shown again):")
    click.echo(token)


@click.command("revoke-api-token")
@click.argument("name")
def revoke_api_token_command(name: str) -> None:
    """Delete an API token: refused at once by this process, by running servers within
    FRAUDAPP_API_TOKEN_CACHE_SECONDS."""
    if not tokens.revoke_token(name):
        raise click.ClickException(f"there is no token named {name!r}")
    seconds = current_app.config["API_TOKEN_CACHE_SECONDS"]
    click.echo(f"token {name!r} revoked; running servers refuse it within {seconds:g} s")


@click.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(["analyst", "admin"]), required=True)
@click.password_option(help="The password (asked for when not given; at least 8 characters).")
def create_user_command(name: str, role: str, password: str) -> None:
    """Create a user who can log in as analyst or admin."""
    try:
        accounts.create_user(name, role, password)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {role} {name}")


@click.command("set-password")
@click.argument("name")
@click.password_option(help="The new password (asked for when not given; at least 8 characters).")
def set_password_command(name: str, password: str) -> None:
    """Give a user a new password; the user's open sessions end."""
    try:
        accounts.set_password(name, password)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password of {name} changed; their open sessions have ended")


@click.command("monitor")
@click.option(
    "--as-of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day of the window (default: today, UTC).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
def monitor_command(as_of, as_json: bool) -> None:
    """Compute the figures, evaluate the alert rules, store a snapshot, apply the shadow policy
    and refresh the learning panel; exit 1 on an alert."""
    snapshot = alerts.check(as_of.date() if as_of else None)
    outcome = runs.review_shadow()
    if outcome:
        click.echo(f"shadow: {outcome}", err=True)
    learning.refresh()
    if snapshot.alerts and current_app.config["RETRAIN_ON_ALERT"]:
        run = runs.request_run("alert", "monitor")
        click.echo(f"training run {run.id} is {run.status} (FRAUDAPP_RETRAIN_ON_ALERT)", err=True)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "id": snapshot.id,
                    "model_version": snapshot.model_version,
                    "figures": snapshot.figures,
                    "alerts": alerts.for_machines(snapshot.alerts),
                    "deliveries": snapshot.deliveries,
                }
            )
        )
    else:
        figures = snapshot.figures
        click.echo(
            f"model {snapshot.model_version}, {figures['start']} .. {figures['end']}: "
            f"{figures['predictions']} predictions, {figures['labelled']} labelled, "
            f"F1 {_num(figures['f1'])} precision {_num(figures['precision'])} "
            f"recall {_num(figures['recall'])} at threshold {figures['threshold']:.3f}"
        )
        for alert in snapshot.alerts:
            click.echo(f"ALERT {alert['rule']}: {alert['message']} — {alert['suggestion']}")
        if not snapshot.alerts:
            click.echo("no alert")
    sys.exit(1 if snapshot.alerts else 0)


@click.command("init-demo")
def init_demo_command() -> None:
    """First run: secret key, demo history and a first model, each only where missing."""
    if demo.ensure_secret_key(current_app.instance_path):
        click.echo("wrote a generated SECRET_KEY into instance/config.py")
    added = demo.ensure_history()
    if added:
        click.echo(f"simulated {added} demo transactions")
    version = demo.ensure_model()
    if version:
        click.echo(f"trained and serving model {version}")
    scored = demo.ensure_predictions()
    if scored:
        click.echo(f"scored the last two weeks of demo history ({scored} predictions)")
    password = accounts.ensure_demo_admin()
    if password:
        click.echo(f"created the demo admin — user: admin  password: {password}  (shown only once)")
    click.echo("demo ready")


def register_commands(app: Flask) -> None:
    """Attach every command to the app's CLI."""
    for command in (
        import_transactions_command,
        score_file_command,
        simulate_command,
        train_command,
        models_group,
        create_api_token_command,
        revoke_api_token_command,
        create_user_command,
        set_password_command,
        monitor_command,
        retrain_command,
        trainer_command,
        init_demo_command,
    ):
        app.cli.add_command(command)
