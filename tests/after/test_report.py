"""`tuner report`: one HTML file, loaded offline in a real headless Chromium, every plot drawn."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest
from helpers import lenet_digits_db, new_study, one_error_line, real_server, run_tuner

from tuner.after.report import GREY, figures

STUDY_ARGS = ("optimize", "--plugin", "lenet-digits", "--trials", "8", "--epochs", "2", "--seed", "2",
              "--pruner-startup", "2", "--quiet")
PLOTS = ["Optimization history", "Validation accuracy per epoch", "What mattered", "Parallel coordinates",
         "Slices", "Learning rate × batch size", "Timeline"]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    return new_study(tmp_path_factory, "report", *STUDY_ARGS)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        real_server("Debian's chromium is not installed (apt-get install chromium; .ci/run does)",
                     "the report's browser test")
    return found


def browse(html: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on the file, offline (no proxy, no network needed), JavaScript run to rest."""
    env = {**os.environ, "HOME": str(html.parent)}  # its profile goes beside the file, not in ~
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         "--proxy-server=127.0.0.1:9", "--virtual-time-budget=20000", "--enable-logging=stderr", "--v=0",
         *args, html.as_uri()], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow
def test_the_report_draws_every_plot_in_a_real_browser_offline(study_dir, tmp_path):
    proc = run_tuner("report", str(lenet_digits_db(study_dir)), "-o", str(tmp_path / "report.html"),
                     cwd=study_dir, check=True)
    assert f"{len(PLOTS)} plots" in proc.stdout and "opens offline" in proc.stdout
    html = tmp_path / "report.html"
    text = html.read_text()
    assert not re.search(r"<script[^>]+src=", text), "the report must embed its scripts"
    assert [re.sub("<[^>]+>", "", t) for t in re.findall(r"<h2>(.*?)</h2>", text)] == \
        PLOTS
    # what the search did, as `tuner best` says it
    assert re.search(r"<th>search</th><td>\d+ learning-rate steps? from the reference, \d+ trials? drawn around "
                     r"the reference, \d+ around the best so far; "
                     r"the best is [^<]+; pruning spared \d+ of \d+ epochs \(regret: not measured\)</td>", text)

    dom = browse(html, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    drawn = json.loads(re.search(r'<pre id="drawn"[^>]*>(.*?)</pre>', dom.stdout, re.S).group(1))
    assert len(drawn) == len(PLOTS), drawn
    for plot in drawn:
        assert plot["svg"] > 0 and plot["traces"] > 0 and plot["points"] > 0, f"blank plot: {plot}"
    assert re.search(r'<pre id="errors">\s*</pre>', dom.stdout), "JavaScript errors in the page"
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]

    shot = tmp_path / "report.png"  # for a person to look at: in the test's output, not the repo
    assert browse(html, "--window-size=1200,4200", f"--screenshot={shot}").returncode == 0
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1200, 4200)
    assert len(image.crop((0, 300, 1200, 1400)).getcolors(maxcolors=1 << 16)) > 20, "the first plots are blank"


@pytest.mark.slow
def test_pruned_curves_are_grey_and_no_internal_switch_is_named(study_dir):
    study = optuna.load_study(study_name="lenet-digits", storage=f"sqlite:///{lenet_digits_db(study_dir)}")
    plots = {title: fig for title, _, fig in figures(study)}
    assert list(plots) == PLOTS
    pruned = {t.number for t in study.trials if t.state.name == "PRUNED"}
    assert pruned, "the study should prune something"
    for trace in plots["Validation accuracy per epoch"].data:
        number = int(re.sub(r"\D", "", trace.name))
        assert (trace.line.color == GREY) == (number in pruned)
    reference = study.trials[0].value
    assert any(shape.y0 == reference for shape in plots["Optimization history"].layout.shapes)
    for title in ("Parallel coordinates", "Slices"):
        assert "_is_zero" not in plots[title].to_json()


@pytest.mark.slow
def test_curves_count_epochs_from_1_carry_trial_numbers_and_slices_fit_the_page(study_dir):
    study = optuna.load_study(study_name="lenet-digits", storage=f"sqlite:///{lenet_digits_db(study_dir)}")
    plots = {title: fig for title, _, fig in figures(study)}
    curves = plots["Validation accuracy per epoch"]
    for trace in curves.data:
        assert min(trace.x) == 1 and re.fullmatch(r"trial \d+( \(pruned\))?", trace.name), (trace.x, trace.name)
        assert trace.showlegend and "%{y:.2%}" in trace.hovertemplate
    assert curves.layout.xaxis.title.text == "epoch"
    slices = plots["Slices"]
    assert slices.layout.width is None, "a slice figure as wide as 300 px a panel does not fit the page"
    panels = [k for k in slices.layout.to_plotly_json() if k.startswith("xaxis")]
    assert len(panels) > 3 and max(slices.layout[k].domain[1] for k in panels) <= 1
    assert len({tuple(slices.layout["y" + k[1:]].domain) for k in panels}) > 1, "panels in several rows"
    for title in ("Optimization history", "Validation accuracy per epoch", "Slices"):
        assert "%" in (plots[title].layout.yaxis.tickformat or ""), title
    objective = [a.text for a in plots["Parallel coordinates"].layout.annotations if a.x == 0]
    assert objective and all(text.endswith("%") for text in objective), objective


@pytest.mark.slow
def test_report_refuses_a_folder_and_an_empty_study_in_one_line(study_dir, tmp_path):
    assert "is a folder" in one_error_line(run_tuner("report", str(lenet_digits_db(study_dir)), "-o", str(tmp_path),
                                                     cwd=study_dir))
    optuna.create_study(study_name="x", storage=f"sqlite:///{tmp_path / 'empty.db'}")
    assert "tuner optimize" in one_error_line(run_tuner("report", str(tmp_path / "empty.db"), cwd=tmp_path))
