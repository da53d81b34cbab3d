"""The report in words (no stores): the ablation's and the sweep's sections in reading order, the report's
answer and its `Next:` lines, as one `ReportWords` value that rendering and publishing read (nothing is parsed
back out of rendered text)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..experiment.schema import Experiment
from .ablation_words import ablation_sections
from .analysis import ReportAnalysis
from .inputs import ReportInputs
from .next_steps import use_lines
from .render import Section, Words
from .sweep_words import build_sections


@dataclass(frozen=True)
class ReportWords:
    """The report's title, sections, answer (the first part's opening paragraphs) and `Next:` lines."""

    title: str
    sections: list
    answer: str
    next_steps: tuple[str, ...]


def report_words(exp: Experiment, inputs: ReportInputs, result: ReportAnalysis, figures: dict[str, Path],
                 published) -> ReportWords:
    """The ablation's part first when there is one (its paired verdicts are the answer; the sweep's become the
    wider view), then the sweep's; the lines about using the answer (`use_lines`, from what `published` did)
    join the first part's `Next:` lines."""
    use = use_lines(published, result.sweep.configurations) if result.sweep is not None else []
    parts = []
    if result.ablation is not None:
        parts.append(ablation_sections(inputs.ablation, result.ablation, figures, inputs.mlruns, exp.path, use))
        use = []
    if result.sweep is not None:
        parts.append(build_sections(exp, result.sweep, inputs.sweep, figures, use, headline=result.ablation is None))
    elif result.sweep_problem is not None:
        parts.append(Words([Section("Sweep: effects across all trials", [f"Not estimated: {result.sweep_problem}"])]))
    sections = [section for part in parts for section in part.sections]
    first = parts[0]
    return ReportWords(f"augsweep report: {inputs.study_name}", sections, "\n\n".join(first.answer),
                       tuple(first.next_steps))
