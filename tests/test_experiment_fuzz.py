"""Fuzzed experiment files, and a fixed campaign of bad inputs (experiment files, command lines, API calls):
every input is either accepted or answered with exit 2 (or `UserError`) and one `error:` line, never a traceback
or a hang, and a refused input writes no store. Hypothesis mutates the tiny
experiment (any key set to any YAML value, keys dropped or added) and also writes arbitrary text; a bounded
number of examples, run in-process through the real `sweep.py` entry point (`--repair`, which validates
the file and the stores and trains nothing)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from augsweep.cli import main
from tests.helpers import tiny_experiment

BASE = tiny_experiment(name="fuzz")
KEYS = [(k,) for k in BASE] + [(k, sub) for k, v in BASE.items() if isinstance(v, dict) for sub in v] + [
    ("dataset", "path"), ("dataset", "stream"), ("dataset", "follow_symlinks"), ("model",), ("model", "base"),
    ("model", "weights"), ("ablation",), ("stop",), ("equivalence_margin",), ("search_space", "augmentations", "flip"),
    ("search_space", "augmentations", "rotation"), ("search_space", "depth", "high"), ("bogus",)]

scalars = (st.none() | st.booleans() | st.integers(-10**7, 10**7) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["/etc/hostname", "/dev/zero", "..", "folder", "synthetic",
                                                    "true", "1e309", "!!python/object:os.system", "~"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                           max_size=3), max_leaves=6)


def _set(doc: dict, path: tuple, value) -> dict:
    node = doc
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return doc


@st.composite
def experiment_texts(draw) -> str:
    if draw(st.integers(0, 9)) == 0:  # arbitrary text, YAML or not
        return draw(st.text(max_size=200))
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(KEYS))
        if draw(st.booleans()) and len(path) == 1 and path[0] in doc:
            del doc[path[0]]
        else:
            _set(doc, path, draw(values))
    return yaml.safe_dump(doc, allow_unicode=True)


def _run(text: str, capsys) -> tuple[int, str, Path]:
    tmp = Path(tempfile.mkdtemp(prefix="augsweep-fuzz-"))
    path = tmp / "experiment.yaml"
    path.write_text(text)
    mlruns = tmp / "mlruns"
    code = main(["repair", str(path), "--mlruns", str(mlruns)])
    return code, capsys.readouterr().err, mlruns


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(text=experiment_texts())
# found by CI: a search-space path holding a carriage return was printed raw, splitting the error line
@example(text='name: fuzz\ndataset: {source: synthetic, image_size: [16, 16], samples: 96}\nsearch_space: "\\r"\n'
              'trials: 3\n')
def test_every_experiment_file_is_accepted_or_refused_in_one_line_and_writes_nothing(text, capsys):
    code, err, mlruns = _run(text, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err[-2000:], text)  # `--repair` without a study refuses even a valid file
    assert len(lines) == 1 and lines[0].startswith("error: "), (err[-2000:], text)
    assert "Traceback" not in err
    assert not mlruns.exists(), "a refused input wrote a store"


# ----------------------------------------------------------------------------- the bad-input campaign
# A fixed campaign beside the random one above: several hundred bad inputs (experiment files, command-line
# arguments, API arguments) run in-process through the very checks the entry points make, with no training:
# `load_experiment` + `check_before_training` for files, `cli.sweep_arguments` + the CLI's store resolution for
# command lines, the API's own functions (on an experiment file that does not exist, so an argument that passes
# ends at the experiment check) for the API. Each input is `clear` (UserError/ConfigError, or argparse's exit 2,
# with one short line), `accepted`, `crashed` (anything else, or a message that is not one short line) or `hung`
# (over HANG_SECONDS); the campaign asserts 0 crashed, 0 hung, and that a refused input wrote nothing.

HANG_SECONDS = 5
MAX_LINE = 1000

KEY_PATHS = ["name", "dataset", "dataset.source", "dataset.image_size", "dataset.samples", "dataset.path",
             "dataset.validation_split", "dataset.cache", "search_space", "search_space.depth",
             "search_space.depth.high", "search_space.augmentations", "search_space.augmentations.flip",
             "search_space.augmentations.flip.mode", "search_space.augmentations.contrast.factor",
             "search_space.augmentations.rotation", "train", "train.epochs", "train.batch_size",
             "train.learning_rate", "trials", "repeats", "sampler", "pruner", "seed", "stop", "equivalence_margin",
             "max_consecutive_failures", "model", "model.base", "ablation", "ablation.repeats", "ablation.base",
             "bogus_key"]
BAD_VALUES = [None, True, -1, 0, 2 ** 64, 1e308, float("nan"), float("-inf"), 2.5, "", "x" * 5000, "../../etc",
              "/dev/zero", "/proc/self/cache", [], {}, [1, "a", None]]


def _raw_texts() -> dict[str, str | bytes]:
    base = yaml.safe_dump(BASE, sort_keys=False)

    def bomb(levels: int, key: str) -> str:
        lines = ["description:"] + [f"  l{i}: &l{i} [" + ", ".join(['"lol"'] * 10 if i == 0 else [f"*l{i - 1}"] * 10)
                                    + "]" for i in range(levels)]
        return "\n".join(lines) + "\n" + base.replace(f"{key}: ", f"{key}: *l{levels - 1} #", 1)

    return {
        "alias bomb as name": bomb(9, "name"), "alias bomb as trials": bomb(8, "trials"),
        "alias bomb as sampler": bomb(7, "sampler"), "alias bomb unused": bomb(9, "bogus"),
        "duplicate key": base + "trials: 7\n",
        "duplicate nested key": base.replace("  samples: 96", "  samples: 96\n  samples: 9"),
        "python tag": base + "bogus: !!python/object/apply:os.system ['true']\n",
        "python name tag": "name: !!python/name:os.system\n" + base,
        "custom tag": base.replace("sampler: random", "sampler: !custom random"),
        "binary": b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 20, "utf-16": base.encode("utf-16"),
        "nul byte": base.replace("name: fuzz", "name: fu\x00zz"), "empty": "", "comment only": "# nothing\n",
        "a list": "- a\n- b\n", "a scalar": "42\n", "deep nesting": "a: " + "[" * 40 + "]" * 40 + "\n",
        "unclosed bracket": "name: [fuzz\n", "tab indentation": "name: fuzz\n\tdataset: x\n",
        "huge": base + "description: '" + "y" * (1 << 20) + "'\n", "json": '{"name": "fuzz", "auths": {"a": "tok"}}',
        "line breaks in a key": base + '"bad\\nkey": 1\n', "very long key": base + "k" * 100_000 + ": 1\n",
    }


def _experiment_cases() -> list[tuple[str, str | bytes]]:
    cases = []
    for key in KEY_PATHS:
        for value in BAD_VALUES:
            doc = yaml.safe_load(yaml.safe_dump(BASE))
            _set(doc, tuple(key.split(".")), value)
            cases.append((f"{key}={str(value)[:20]!r}", yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)))
    return cases + sorted(_raw_texts().items())


CLI_CASES = [
    ["--trials", t] for t in ("0", "-1", "2.5", "nan", "inf", "1e3", "abc", "", " ", "99999999999999999999999",
                              "100001", "0x10", "٣")
] + [
    ["--workers", w] for w in ("0", "-2", "many", "2.0", "", "100000", "auto ", "1e2")
] + [
    ["--mlruns", m] for m in ("", " ", "/", "/proc/self", "/sys/kernel", "x" * 300, "a\nb", "a\x00b", "/dev/null",
                              "/etc/passwd/below", "//")
] + [
    ["--study-name", n] for n in ("", "../x", "/abs", ".hidden", "a/b", "x y", "x" * 201, "é\n", "-")
] + [
    ["--storage", u] for u in ("", "nosuch://x", "sqlite:///:memory:", "journal:/etc", "postgresql://u:a/b@h/db",
                               "postgresql://u:a@b@h/db", "mysql://u:p?q@h/db", "x" * 3000, "sqlite:////no/such/dir/o.db")
] + [
    ["--tracking-uri", u] for u in ("", "ftp://h", "file:///tmp/x", "/tmp/x", "http://u:a/b@127.0.0.1:1",
                                    "https://u:p#q@h", "mlflow\n", "x" * 3000)
] + [
    ["--reproduce", ""], ["--reproduce", " "], ["--reproduce", "x" * 500], ["--reproduce", "a\nb"],
    ["--repeats", "3"], ["--ablation", "--repeats", "0"], ["--ablation", "--repeats", "1000"],
    ["--ablation", "--trials", "3"], ["--reproduce", "0", "--workers", "2"], ["--worker"],
    ["--worker", "--workers", "2"], ["--ablation", "--repair"],
    ["--storage", "sqlite:///:memory:", "--workers", "auto"],
    ["--bogus"], ["--trials"], ["--trials", "1", "--trials", "0"],
]

API_CASES = [("sweep", {"trials": t}) for t in (0, -1, 2.5, float("nan"), float("inf"), "3", 10 ** 30, True, [3],
                                                   None, 100_000)] + [
    ("sweep", {"workers": w}) for w in (0, -1, "many", 2.5, 10 ** 6, None, [2], False)] + [
    ("sweep", {"study_name": n}) for n in ("../x", "/abs", 5, "", ".x", "x" * 300, ["x"])] + [
    ("sweep", {"mlruns": m}) for m in (None, 5, "", "/", "/proc/x", b"m", ["m"])] + [
    ("sweep", {"storage": u}) for u in (5, "", "postgresql://u:a/b@h/db", ["u"], b"sqlite://")] + [
    ("sweep", {"tracking_uri": u}) for u in (5, "", "http://u:a/b@h", "file:///tmp/x")] + [
    ("sweep", {"progress": p}) for p in ("yes", 1, None)] + [
    ("sweep", {"bogus": 1}), ("sweep", {"storage": "sqlite:///:memory:", "workers": 2})] + [
    ("report", {"out": o}) for o in ("", 5, "/", "/proc/y", ["o"])] + [
    ("report", {"study_name": n}) for n in ("../x", "/abs", 3.5)] + [
    ("report", {"mlruns": m}) for m in (None, "", 7)] + [("report", {"bogus": True}), ("report", {"trials": 3})] + [
    ("load_experiment", {"path_or_dict": v}) for v in (None, 5, [1], b"x", "", {"name": "../x"}, {"name": 5}, {})]


class _Hung(Exception):
    pass


def _classify(run) -> tuple[str, str]:
    """('clear' | 'accepted' | 'crashed' | 'hung', the message)."""
    import contextlib
    import io
    import signal

    from augsweep.runtime import UserError

    def alarm(*_):
        raise _Hung()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            run()
        return "accepted", ""
    except _Hung:
        return "hung", ""
    except UserError as e:
        text = str(e)
    except SystemExit as e:
        text = stderr.getvalue().strip()
        if e.code != 2:
            return "crashed", f"exit {e.code}: {text}"
    except Exception as e:  # noqa: BLE001 - what the campaign counts
        return "crashed", f"{type(e).__name__}: {e}"[:2000]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    one_line = "\n" not in text.strip() and 0 < len(text) <= MAX_LINE
    return ("clear" if one_line else "crashed"), text[:2000]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_bad_input_campaign_is_answered_clearly_without_a_crash_a_hang_or_a_write(tmp_path, monkeypatch):
    import augsweep
    from augsweep import cli, verbs
    from augsweep.experiment.load import check_before_training, load_experiment

    counts: dict[str, dict[str, int]] = {}
    crashes: list[tuple[str, str, str]] = []
    writes: list[tuple[str, str]] = []

    def record(group: str, name: str, outcome: str, message: str) -> None:
        counts.setdefault(group, {}).setdefault(outcome, 0)
        counts[group][outcome] += 1
        if outcome in ("crashed", "hung"):
            crashes.append((group, name, f"{outcome}: {message}"))

    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE, sort_keys=False))
    for i, (name, text) in enumerate(_experiment_cases()):
        folder = tmp_path / f"e{i}"
        folder.mkdir()
        path = folder / "experiment.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        outcome, message = _classify(lambda: check_before_training(load_experiment(path)))
        record("experiment file", name, outcome, message)
        if outcome != "accepted" and _files(folder) != ["experiment.yaml"]:
            writes.append((name, str(_files(folder))))

    for i, args in enumerate(CLI_CASES):
        folder = tmp_path / f"c{i}"
        folder.mkdir()
        argv = [str(good), "--mlruns", str(folder / "m"), *args]

        def cli_checks(argv=argv):
            parsed = cli.sweep_arguments(argv)
            verbs.experiment_and_stores(
                parsed.experiment, parsed.mlruns, parsed.storage, parsed.tracking_uri, parsed.study_name,
                training=not parsed.repair, names=verbs.CLI,
                sweep=not (parsed.repair or parsed.ablation or parsed.reproduce is not None))

        outcome, message = _classify(cli_checks)
        record("command line", repr(args)[:80], outcome, message)
        if outcome != "accepted" and _files(folder):
            writes.append((repr(args)[:80], str(_files(folder))))

    missing = tmp_path / "no-such-experiment.yaml"
    for i, (function, kwargs) in enumerate(API_CASES):
        folder = tmp_path / f"a{i}"
        folder.mkdir()
        monkeypatch.chdir(folder)
        call = getattr(augsweep, function)
        args = () if function == "load_experiment" else (missing,)
        kwargs = kwargs if function == "load_experiment" or "mlruns" in kwargs else {"mlruns": folder / "m", **kwargs}
        outcome, message = _classify(lambda: call(*args, **kwargs))
        if outcome == "clear" and "file not found" in message and "no-such-experiment" in message:
            outcome = "accepted"  # the arguments passed; the (deliberately missing) experiment stopped the call
        record("API", f"{function}{sorted(kwargs)}", outcome, message)
        if outcome != "accepted" and _files(folder):
            writes.append((f"{function} {kwargs}"[:80], str(_files(folder))))
    monkeypatch.chdir(tmp_path)

    total = sum(sum(c.values()) for c in counts.values())
    summary = {group: dict(sorted(c.items())) for group, c in counts.items()}
    print(f"bad-input campaign: {total} inputs: {summary}")
    assert total >= 300, summary
    assert not crashes, crashes[:10]
    assert not writes, writes[:10]
    assert sum(c.get("clear", 0) for c in counts.values()) >= 250, summary  # most of them are bad, and say so
