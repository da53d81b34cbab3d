"""Links into the MLflow UI that land on a study's trials, and `make ui`.

MLflow 3.17 opens an experiment on its GenAI overview, shows no metric column in the runs table and
charts only the first 10 runs. Its runs page reads a saved view from the URL: `viewStateShareKey=K`
loads the experiment tag `mlflow.sharedViewState.K` (JSON: the search facets `searchFilter`,
`orderByKey`, `orderByAsc` and UI state such as `selectedColumns`, `runsHiddenMode`; this is what the
UI's own "Share" button writes). augsweep writes one such view per experiment (trials only, best
first, the columns that matter) and links to it in the model-training view, plus MLflow's compare
page for the top trials.

    python -m augsweep.serve.mlflow_ui --mlruns DIR [--port 5000]   # `make ui`: links, then the UI
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

from ..experiment.space import parse_aug_key
from ..stores.urls import LOCAL_UI

VIEW_KEY = "augsweep-trials"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
TOP = 3  # distinct configurations in the curves and compare links: three curves stay readable
# Only metrics without a `/` in the runs page's charts: the mean curves and bests, not the per-repeat
# `repeat<r>/…` sections MLflow would list first (the box is MLflow's chart search, a case-insensitive regex).
CHARTS_FILTER = "^[^/]*$"


def column(kind: str, key: str) -> str:
    """A runs-table column as the UI names it (`metrics.`val_loss``)."""
    return f"{kind}.`{key}`"


def trials_view(switches: list[str]) -> dict:
    """The saved view: trial runs only, best first; the columns `depth` and the augmentations' switches first,
    then `best_val_loss` and `val_loss` (magnitudes and the rest stay in each run's page); every run in the
    charts (not the first 10), charts of the mean curves only (`CHARTS_FILTER`)."""
    switches = sorted(switches)
    columns = [column("params", "depth"), *[column("params", p) for p in switches],
               column("metrics", "best_val_loss"), column("metrics", "val_loss")]
    return {
        "searchFilter": "tags.kind = 'trial'",
        "orderByKey": column("metrics", "best_val_loss"),
        "orderByAsc": True,
        "selectedColumns": columns,
        "columnOrder": columns,
        "runsHiddenMode": "SHOW_ALL",
        "chartsSearchFilter": CHARTS_FILTER,
    }


def switch_params(runs: list) -> list[str]:
    """The augmentations' switch params of these runs: flat augmentation keys (`parse_aug_key`) whose logged
    values are booleans (a name may hold `_`, so the key's shape cannot tell a switch from a magnitude)."""
    values: dict[str, set] = {}
    for r in runs:
        for k, v in r.data.params.items():
            if parse_aug_key(k):
                values.setdefault(k, set()).add(v)
    return sorted(k for k, seen in values.items() if seen <= {"True", "False"})


def distinct_configurations(runs: list, top: int) -> list:
    """The first `top` runs whose configurations differ (depth and every `aug_*` param): a configuration
    repeated by a later block, with the same settings, is one configuration, shown once (its best run)."""
    seen, out = set(), []
    for r in runs:
        key = tuple(sorted((k, v) for k, v in r.data.params.items() if k == "depth" or parse_aug_key(k)))
        if key not in seen:
            seen.add(key)
            out.append(r)
        if len(out) == top:
            break
    return out


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
    view = json.dumps(trials_view(switch_params(runs)))
    experiment = client.get_experiment(experiment_id)
    if experiment.tags.get(VIEW_TAG) != view:
        client.set_experiment_tag(experiment_id, VIEW_TAG, view)
    base = base_url.rstrip("/")
    runs_url = (f"{base}/#/experiments/{experiment_id}/runs?"
                + urllib.parse.urlencode({"workflowType": "machine_learning", "viewStateShareKey": VIEW_KEY}))
    finished = [r for r in runs if r.info.status == "FINISHED" and "best_val_loss" in r.data.metrics]
    best = distinct_configurations(finished, top)
    compare = curves = None
    if len(best) >= 2:
        ids, exps = _json([r.info.run_id for r in best]), _json([experiment_id])
        compare = f"{base}/#/compare-runs?" + _query({"runs": ids, "experiments": exps})
        # val_loss alone on a log axis (the differences between good configurations are a few hundredths of a
        # loss that starts near 0.7-2.3), in a tall plot with room for the legend.
        curves = f"{base}/#/metric?" + _query({"runs": ids, "metric": _json("val_loss"), "experiments": exps,
                                                "plot_metric_keys": _json(["val_loss"]), "x_axis": "step",
                                                "y_axis_scale": "log", "plot_layout": _json(CURVES_LAYOUT)})
    return Links(experiment.name, runs_url, compare, curves, [r.info.run_name for r in best])


CURVES_LAYOUT = {"yaxis": {"type": "log", "autorange": True}, "height": 560,
                 "legend": {"orientation": "h", "y": -0.15}}


def describe(links: Links) -> list[str]:
    """The lines a terminal shows for the links."""
    lines = [f"  {links.runs}", "      # the trials, best first: depth, the switches aug_*, best_val_loss, val_loss"]
    if links.compare:
        best = f"the best {len(links.top)} configurations ({', '.join(links.top)})"
        lines += [f"  {links.curves}", f"      # val_loss curves of {best}, log scale",
                  f"  {links.compare}", f"      # {best} side by side: parameters and metrics (best_val_loss)"]
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
    from ..stores.tracking import client_for

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


def main(argv=None, prog: str = "python -m augsweep.serve.mlflow_ui") -> int:
    p = argparse.ArgumentParser(prog=prog,
                                description="The MLflow UI over an embedded store, with links to each study's trials.")
    p.add_argument("--mlruns", default="mlruns")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    args = p.parse_args(argv)
    mlruns = Path(args.mlruns).resolve()
    base = f"http://{args.host}:{args.port}"
    links = []
    if (mlruns / "mlflow.db").exists():
        from ..stores.tracking import tracking_uri_for

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
        from .process import wait_http

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
        from .process import stop_group

        stop_group(proc.pid)
        return 0


if __name__ == "__main__":
    sys.exit(main())
