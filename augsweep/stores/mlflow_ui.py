"""Links into the MLflow UI that land on a study's trials, and `make ui`.

MLflow 3.17 opens an experiment on its GenAI overview, shows no metric column in the runs table and
charts only the first 10 runs. Its runs page reads a saved view from the URL: `viewStateShareKey=K`
loads the experiment tag `mlflow.sharedViewState.K` (JSON: the search facets `searchFilter`,
`orderByKey`, `orderByAsc` and UI state such as `selectedColumns`, `runsHiddenMode`; this is what the
UI's own "Share" button writes). augsweep writes one such view per experiment (trials only, best
first, the columns that matter) and links to it in the model-training view, plus MLflow's compare
page for the top trials.

    python -m augsweep.stores.mlflow_ui --mlruns DIR [--port 5000]   # `make ui`: links, then the UI
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

VIEW_KEY = "augsweep-trials"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
TOP = 5
LOCAL_UI = "http://127.0.0.1:5000"


def column(kind: str, key: str) -> str:
    """A runs-table column as the UI names it (`metrics.`val_loss``)."""
    return f"{kind}.`{key}`"


def trials_view(aug_params: list[str]) -> dict:
    """The saved view: trial runs only, best first, val_loss, best_val_loss, depth and aug_* columns,
    every run in the charts (not the first 10)."""
    return {
        "searchFilter": "tags.kind = 'trial'",
        "orderByKey": column("metrics", "best_val_loss"),
        "orderByAsc": True,
        "selectedColumns": [column("metrics", "val_loss"), column("metrics", "best_val_loss"),
                            column("params", "depth"), *[column("params", p) for p in aug_params]],
        "runsHiddenMode": "SHOW_ALL",
    }


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def _query(params: dict) -> str:
    """A query string MLflow's router reads, readable in a terminal (brackets and commas left as they are)."""
    return urllib.parse.urlencode(params, safe="[],")


@dataclass
class Links:
    """Where to look in the MLflow UI for one study."""

    experiment: str
    runs: str
    compare: str | None  # MLflow's compare page of the best trials (params, metrics, plots)
    curves: str | None  # their loss and val_loss curves in one chart
    top: list[str]  # run names of the trials compared


def study_links(client, experiment_id: str, base_url: str = LOCAL_UI, top: int = TOP) -> Links:
    """Save the trials view on the experiment (a tag) and return the links to it and to the compare page
    of the `top` best finished trials."""
    runs = client.search_runs([experiment_id], "tags.kind = 'trial'", order_by=["metrics.best_val_loss ASC"],
                              max_results=1000)
    aug = sorted({k for r in runs for k in r.data.params if k.startswith("aug_")})
    view = json.dumps(trials_view(aug))
    experiment = client.get_experiment(experiment_id)
    if experiment.tags.get(VIEW_TAG) != view:
        client.set_experiment_tag(experiment_id, VIEW_TAG, view)
    base = base_url.rstrip("/")
    runs_url = (f"{base}/#/experiments/{experiment_id}/runs?"
                + urllib.parse.urlencode({"workflowType": "machine_learning", "viewStateShareKey": VIEW_KEY}))
    best, seen = [], set()
    for r in runs:  # the best run of each of the `top` best distinct configurations (run name `tNN <label>`)
        name = (r.info.run_name or "").split(" ", 1)[-1]
        if r.info.status == "FINISHED" and "best_val_loss" in r.data.metrics and name not in seen:
            seen.add(name)
            best.append(r)
    best = best[:top]
    compare = curves = None
    if len(best) >= 2:
        ids, exps = _json([r.info.run_id for r in best]), _json([experiment_id])
        compare = f"{base}/#/compare-runs?" + _query({"runs": ids, "experiments": exps})
        curves = f"{base}/#/metric?" + _query({"runs": ids, "metric": _json("val_loss"), "experiments": exps,
                                                "plot_metric_keys": _json(["val_loss", "loss"]), "x_axis": "step"})
    return Links(experiment.name, runs_url, compare, curves, [r.info.run_name for r in best])


def describe(links: Links) -> list[str]:
    """The lines a terminal shows for the links."""
    lines = [f"  {links.runs}", "      # the trials, best first (val_loss, best_val_loss, depth, aug_*)"]
    if links.compare:
        best = f"the best {len(links.top)} ({', '.join(links.top)})"
        lines += [f"  {links.curves}", f"      # learning curves (loss, val_loss) of {best} in one chart",
                  f"  {links.compare}", f"      # {best} side by side: parameters and metrics"]
    return lines


def can_open_browser() -> bool:
    """A browser may be opened: a display, an interactive terminal, not CI or a test."""
    if os.environ.get("CI") or os.environ.get("PYTEST_CURRENT_TEST") or os.environ.get("AUGSWEEP_NO_BROWSER"):
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return sys.stdout.isatty()


def open_in_browser(url: str) -> bool:
    """Open `url` in the user's browser where one can be opened; True if it was."""
    if not can_open_browser():
        return False
    import webbrowser

    try:
        return webbrowser.open(url)
    except Exception:  # noqa: BLE001 - no browser is not an error
        return False


def all_study_links(tracking_uri: str, base_url: str) -> list[Links]:
    """Links for every experiment of the store that has trial runs."""
    from .tracking import client_for

    client = client_for(tracking_uri)
    out = []
    for exp in client.search_experiments():
        if client.search_runs([exp.experiment_id], "tags.kind = 'trial'", max_results=1):
            out.append(study_links(client, exp.experiment_id, base_url))
    return out


def ui_command(mlruns: Path, host: str, port: int, workers: int = 1) -> tuple[list[str], dict]:
    """`mlflow ui` over the embedded store: one worker, no GenAI job runner."""
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    cmd = [mlflow, "ui", "--workers", str(workers), "--backend-store-uri", f"sqlite:///{mlruns / 'mlflow.db'}",
           "--default-artifact-root", str(mlruns / "artifacts"), "--host", host, "--port", str(port)]
    return cmd, {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m augsweep.stores.mlflow_ui",
                                description="The MLflow UI over an embedded store, with links to each study's trials.")
    p.add_argument("--mlruns", default="mlruns")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    args = p.parse_args(argv)
    mlruns = Path(args.mlruns).resolve()
    base = f"http://{args.host}:{args.port}"
    links = []
    if (mlruns / "mlflow.db").exists():
        from .tracking import tracking_uri_for

        links = all_study_links(tracking_uri_for(mlruns), base)
    print(f"MLflow UI on {base} over {args.mlruns}/ (Ctrl-C stops it)")
    for one in links:
        print(f"\n{one.experiment}:")
        print("\n".join(describe(one)))
    if not links:
        print(f"no sweep in {args.mlruns}/ yet: make sweep [EXP=...] first")
    print(flush=True)
    cmd, env = ui_command(mlruns, args.host, args.port)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)  # its own group: stopped with its workers
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if links and can_open_browser():
        from .servers import wait_http

        def open_when_up():
            try:
                wait_http(base + "/health", 120, proc)
            except RuntimeError:
                return
            open_in_browser(links[0].runs)

        threading.Thread(target=open_when_up, daemon=True).start()
    try:
        return proc.wait()
    except KeyboardInterrupt:
        from .servers import stop_group

        stop_group(proc.pid)
        return 0


if __name__ == "__main__":
    sys.exit(main())
