"""A tiny study end to end: cells, resumption, the report with every table and image."""

from __future__ import annotations

import base64
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from dotrec.data.splits import Split
from dotrec.machine import machine_label
from dotrec.study import Cell, SilentListener, StudyConfig, StudyResult, run_study, write_report
from dotrec.study.published import PUBLISHED
from tests.conftest import planted_split

PNG = b"\x89PNG\r\n\x1a\n"
CONFIG = StudyConfig(
    models=("mf", "ials", "gmf"),
    dims=(4, 8),
    n_trials=2,
    n_seeds=2,
    epoch_scale=0.1,
    threads=1,
    pruner="none",
    holdout_negatives=20,
)


class Recorder(SilentListener):
    def __init__(self) -> None:
        self.reused: list[int] = []

    def cell_finished(self, cell: Cell, reused: int) -> None:
        self.reused.append(reused)


@pytest.fixture(scope="module")
def split() -> Split:
    return planted_split(n_users=80, n_items=40, per_user=8, n_negatives=20)


@pytest.fixture(scope="module")
def study(split: Split, tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyResult, Path]:
    out = tmp_path_factory.mktemp("study")
    return run_study(split, CONFIG, out), out


def test_every_cell_is_tuned_retrained_and_tested(study: tuple[StudyResult, Path]) -> None:
    result, out = study
    assert [(c.model, c.size) for c in result.cells] == [
        (m, d) for d in CONFIG.dims for m in CONFIG.models
    ]
    for cell in result.cells:
        assert cell.tuning.finished == 2 and cell.tuning.best_params
        assert [r.seed for r in cell.runs] == [0, 1]
        for run in cell.runs:
            assert set(run.summaries) == {"sampled", "full"}
        assert (out / "cells" / f"{cell.model}-d{cell.size}" / "seed1.npz").exists()


def test_each_retrained_seed_is_saved_and_reproduces_its_row(
    split: Split, study: tuple[StudyResult, Path]
) -> None:
    from dotrec.eval.protocols import evaluate
    from dotrec.models import load_model, load_seen

    result, out = study
    for cell in result.cells:
        for run in cell.runs:
            folder = out / "cells" / f"{cell.model}-d{cell.size}" / f"seed{run.seed}"
            model = load_model(folder)
            assert model.name == cell.model and load_seen(folder) is not None
            again = evaluate(model, split, protocol="both", k=10)
            for p in ("sampled", "full"):
                for key in ("hr@10", "ndcg@10"):
                    assert again[p].summary()[key] == pytest.approx(
                        run.summaries[p][key], abs=1e-4
                    ), (cell.model, cell.size, run.seed, p, key)


def test_rerun_reuses_every_finished_cell(split: Split, study: tuple[StudyResult, Path]) -> None:
    result, out = study
    records = sorted(out.glob("cells/*/tuning.json"))
    before = [path.read_bytes() for path in records]
    recorder = Recorder()
    again = run_study(split, CONFIG, out, recorder)
    # The tuning records of done cells stay byte for byte (no wall time of the call in them)
    # and name the storage relative to the study folder, not by this machine's path.
    assert len(records) == len(result.cells)
    assert [path.read_bytes() for path in records] == before
    assert all(str(out.resolve()) not in b.decode() for b in before)
    assert '"storage": "SQLite optuna.db in the study folder"' in before[0].decode()
    assert again.storage == "SQLite optuna.db in the study folder"
    assert recorder.reused == [CONFIG.n_seeds] * len(result.cells)
    for a, b in zip(result.cells, again.cells, strict=True):
        assert a.tuning.best_params == b.tuning.best_params
        assert np.array_equal(a.per_user("full", "ndcg", 10), b.per_user("full", "ndcg", 10))


def test_report_renders_every_table_and_image(study: tuple[StudyResult, Path]) -> None:
    result, out = study
    md_path, html_path = write_report(result, out)
    md, page = md_path.read_text(), html_path.read_text()
    for heading in (
        "## Results",
        "## Dot product vs learned similarity",
        "## Figures",
        "## Best hyperparameters",
    ):
        assert heading in md
    tables = re.findall(r"^\| model \| size .*$", md, flags=re.M)
    assert len(tables) == 2  # results and best hyperparameters
    for cell in result.cells:
        assert re.search(rf"^\| {cell.model} \| {cell.counted_size} \|", md, flags=re.M)
    assert "paired t-test over" in md and "95% CI" in md
    assert "3k (NeuMF" in md  # the size accounting is stated
    seconds = sum(c.tuning.trial_seconds + c.fit_seconds.sum() for c in result.cells)
    assert f"{seconds / 3600:.1f} machine hours in total" in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 2
    for name in images:
        assert (out / name).read_bytes().startswith(PNG)
    assert page.count("<table>") == 3  # results, comparison, hyperparameters
    embedded = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(embedded) == 2 and all(base64.b64decode(e).startswith(PNG) for e in embedded)
    assert "published" not in md.split("## Results")[1].split("## Dot")[0].replace(
        "No published numbers are shown", ""
    )
    # Everything ran here: one sentence names the hardware and the hours on it.
    assert "## Where it ran" in md
    assert f"ran on one kind of machine: {machine_label()} ({seconds / 3600:.2f} h)" in md


def test_figure_2_ticks_the_study_sizes_and_keeps_its_legend_off_the_panels(
    study: tuple[StudyResult, Path],
) -> None:
    from dotrec.study.report import quality_figure

    result, _ = study
    # As if on ml-1m: the published MF and iALS points at size 192 join the figure.
    fig = quality_figure(dataclasses.replace(result, dataset="ml-1m"))
    panels = fig.axes
    assert len(panels) == 4  # HR and NDCG under the sampled and the full protocol
    for ax in panels:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "8", "192"]
        assert ax.get_legend() is None
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    # Read row by row (matplotlib fills columns): the models, then the published points.
    ncol = legend._ncols
    rows = [labels[c * 2 + r] for r in range(2) for c in range(ncol) if c * 2 + r < len(labels)]
    assert rows[:3] == ["mf", "ials", "gmf"]
    assert rows[3:] == [f"{m}, published (Rendle et al. 2020)" for m in ("mf", "ials")]


def test_report_says_where_each_cell_ran(split: Split, study: tuple[StudyResult, Path]) -> None:
    import json

    from dotrec.study.driver import _record_key, _seed_record
    from dotrec.study.report import machine_blocks, render_markdown

    result, out = study
    here = machine_label()
    for cell in result.cells:
        assert set(cell.tuning.machines) == {here}
        assert sum(cell.tuning.machines.values()) == pytest.approx(cell.tuning.trial_seconds)
        for run in cell.runs:
            path = out / "cells" / f"{cell.model}-d{cell.size}" / f"seed{run.seed}.json"
            assert run.machine == here and json.loads(path.read_text())["machine"] == here
    # A GPU ran the GMF trials of size 8; the mf fits of size 4 are records of an older dotrec.
    gpu = "NVIDIA H200 (host AMD EPYC, 16 cores)"
    cells = []
    for c in result.cells:
        if (c.model, c.size) == ("gmf", 8):
            c = dataclasses.replace(
                c, tuning=dataclasses.replace(c.tuning, machines={gpu: 7200.0, here: 1800.0})
            )
        if (c.model, c.size) == ("mf", 4):
            c = dataclasses.replace(
                c, runs=tuple(dataclasses.replace(r, machine=None) for r in c.runs)
            )
        cells.append(c)
    mixed = dataclasses.replace(result, cells=tuple(cells))
    md = render_markdown(machine_blocks(mixed))
    assert "| gmf | 8 | NVIDIA H200 (host AMD EPYC, 16 cores): 2.00 h; " in md
    mf4 = next(c for c in result.cells if (c.model, c.size) == ("mf", 4))
    assert f"not recorded: {mf4.fit_seconds.sum() / 3600:.2f} h |" in md
    assert re.search(rf"^\| mf \| 4 \| {re.escape(here)}: ", md, flags=re.M)
    assert len(re.findall(r"^\| (mf|ials|gmf) \| \d+ \|", md, flags=re.M)) == len(cells)
    totals = md.split("Machine hours by hardware: ")[1].split(".\n")[0].split("; ")
    assert [t.rsplit(": ", 1)[0] for t in totals] == [here, "not recorded", gpu]
    assert totals[2] == f"{gpu}: 2.00 h"
    # A record written before the hardware was recorded still loads (its machine unknown).
    run = mf4.runs[0]
    path = out / "cells" / "mf-d4" / f"seed{run.seed}"
    meta = json.loads(path.with_suffix(".json").read_text())
    del meta["machine"]
    old = path.parent / "old"
    old.with_suffix(".json").write_text(json.dumps(meta))
    old.with_suffix(".npz").write_bytes(path.with_suffix(".npz").read_bytes())
    key = _record_key(split, mf4.tuning.best_params, CONFIG.k)
    assert "machine" not in key  # where a seed ran never decides whether it is reused
    loaded = _seed_record(old, key)
    assert loaded is not None and loaded.machine is None
    assert loaded.summaries == run.summaries


def test_published_numbers_are_labelled_and_cited(
    study: tuple[StudyResult, Path], tmp_path: Path
) -> None:
    result, _ = study
    as_ml1m = dataclasses.replace(result, dataset="ml-1m")
    md = write_report(as_ml1m, tmp_path)[0].read_text()
    rows = [r for r in md.splitlines() if "| published [" in r]
    expected = [p for p in PUBLISHED if p.dataset == "ml-1m" and p.model in CONFIG.models]
    assert len(rows) == len(expected) == 2  # mf and ials
    assert "| mf | 192 | - | 0.7294 | 0.4523 |" in md
    assert "Rendle, W. Krichene" in md


def test_comparison_picks_sides_by_holdout_and_says_who_wins(
    study: tuple[StudyResult, Path],
) -> None:
    from dotrec.study import comparisons

    result, _ = study
    comps = comparisons(result.cells, 10)
    assert [c.size for c in comps] == [4, 8, None]
    for c in comps:
        same = [x for x in result.cells if c.size in (None, x.size)]
        dots = [x for x in same if x.model in ("mf", "ials")]
        assert c.dot.tuning.best_value == max(x.tuning.best_value for x in dots)
        assert c.learned.model == "gmf"


def test_bad_study_settings_are_refused() -> None:
    from dotrec.errors import ConfigError

    for bad in (
        dict(models=("mf", "mf")),
        dict(dims=(0,)),
        dict(models=("nope",)),
        dict(n_seeds=0),
        dict(metric="auc"),
    ):
        with pytest.raises(ConfigError):
            StudyConfig(**bad)


def test_study_models_serve_over_http(study: tuple[StudyResult, Path]) -> None:
    from tests.conftest import require

    require("fastapi")
    from fastapi.testclient import TestClient

    from dotrec.recommend import Recommender
    from dotrec.serve import create_app

    result, out = study
    for cell in result.cells:
        folder = out / "cells" / f"{cell.model}-d{cell.size}" / f"seed{cell.runs[0].seed}"
        rec = Recommender.from_dir(folder)
        user = rec.users.external([0]).tolist()[0]
        items, _ = rec.recommend(user, 5)
        body = TestClient(create_app(folder)).get(f"/users/{user}/recommendations?k=5").json()
        assert [x["item_id"] for x in body["items"]] == items.tolist(), cell.model


def test_status_reads_each_cell_from_storage_and_records(
    study: tuple[StudyResult, Path], tmp_path: Path
) -> None:
    import json
    import shutil

    import optuna
    from typer.testing import CliRunner

    from dotrec.cli import app
    from dotrec.errors import ConfigError
    from dotrec.study.status import study_status
    from dotrec.tune.objective import ELAPSED_ATTR

    result, finished_out = study
    out = tmp_path / "study"
    shutil.copytree(finished_out, out)
    status = study_status(CONFIG, out)
    assert [(s.model, s.size) for s in status] == [(c.model, c.size) for c in result.cells]
    for s, c in zip(status, result.cells, strict=True):
        assert (s.state, s.finished, s.seeds, s.running) == ("done", 2, 2, 0)
        assert s.tuning is not None and s.tuning.best_params == c.tuning.best_params
        assert (s.tuning.best_value, s.tuning.best_trial) == (
            c.tuning.best_value,
            c.tuning.best_trial,
        )
        assert s.trial_seconds == pytest.approx(c.tuning.trial_seconds)
        assert s.fit_seconds == pytest.approx(c.fit_seconds.sum())
    # One more size, seed or trial than was run: not started, final fits, tuning.
    more = dataclasses.replace(CONFIG, dims=(4, 16), n_seeds=3)
    states = {(s.model, s.size): s.state for s in study_status(more, out)}
    assert states[("mf", 4)] == "final fits" and states[("mf", 16)] == "not started"
    # A trial killed mid-run stays RUNNING in the storage; it counts to its latest epoch.
    url = f"sqlite:///{out / 'optuna.db'}"
    name = "planted:ials:d8"
    optuna.load_study(study_name=name, storage=url).ask().set_user_attr(ELAPSED_ATTR, 5.0)
    ials = study_status(CONFIG, out)[4]
    assert ials.running == 1 and ials.state == "done"
    before = status[4]
    assert (before.model, before.size) == ("ials", 8)
    assert ials.trial_seconds == pytest.approx(before.trial_seconds + 5.0)
    tuning = study_status(dataclasses.replace(CONFIG, n_trials=3), out)
    assert {s.state for s in tuning} == {"tuning"}
    # The studies of a second dataset in the same storage: --dataset chooses.
    optuna.create_study(study_name="other:mf:d4", storage=url)
    with pytest.raises(ConfigError, match="pass --dataset"):
        study_status(CONFIG, out)
    assert study_status(CONFIG, out, dataset="other")[0].finished == 0
    with pytest.raises(ConfigError, match="no study storage"):
        study_status(CONFIG, tmp_path / "none")
    assert not (tmp_path / "none").exists()
    args = ["study", "--status", "--out", str(finished_out), "--models", "mf,ials,gmf"]
    r = CliRunner().invoke(app, [*args, "--dims", "4,8", "--trials", "2", "--seeds", "2"])
    assert r.exit_code == 0, r.output
    assert "6 of 6 cells done" in r.output and "2/2" in r.output
    # A killed trial's checkpoint (tests/tune/test_checkpoint.py) shows where a rerun resumes.
    state = finished_out / "trial-checkpoints" / "planted_gmf_d8" / "trial-9" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"params": {}, "saved": {"gmf": 5}, "values": {}}))
    final = state.parent.parent / "final-seed1" / "state.json"
    final.parent.mkdir()
    final.write_text(json.dumps({"params": {}, "saved": {"gmf": 3}, "values": {}}))
    gmf8 = study_status(CONFIG, finished_out)[5]
    assert (gmf8.model, gmf8.size) == ("gmf", 8)
    assert gmf8.checkpoints == {"final-seed1": {"gmf": 3}, "trial-9": {"gmf": 5}}
    assert not any(s.checkpoints for s in study_status(CONFIG, finished_out)[:5])
    # Not a terminal: the table keeps its natural width (one row per line, not wrapped at 80
    # columns) and the totals line stays whole, so a log can be grepped.
    r = CliRunner().invoke(app, [*args, "--dims", "4,8", "--trials", "2", "--seeds", "2"])
    assert re.search(r"│ gmf .*│ 2/2, trial-9 saved at gmf epoch 5 .*│", r.output), r.output
    assert re.search(r"│ 2/2, final-seed1 saved at gmf epoch 3 │", r.output), r.output
    assert re.search(r"6 of 6 cells done; machine time .* h of final fits = .* h\n", r.output)


def test_published_points_keep_sources_and_equal_values_apart() -> None:
    from dotrec.study.report import published_points

    ml1m = [p for p in PUBLISHED if p.dataset == "ml-1m"]
    points = published_points(ml1m)
    assert [p for p, _, _ in points] == ml1m  # all three have a size
    marker = {p.by: m for p, _, m in points}
    assert set(marker) == {"Rendle et al. 2020", "He et al. 2017"}
    assert marker["Rendle et al. 2020"] == "*" and marker["He et al. 2017"] != "*"
    xs = [x for _, x, _ in points]
    assert len(set(xs)) == 3 and xs == sorted(xs)  # side by side, in table order
    assert all(192 / 1.1 < x < 192 * 1.1 for x in xs)
    gowalla = [p for p in PUBLISHED if p.dataset == "gowalla"]
    assert published_points(gowalla) == []  # no size: drawn as a band, not as points


def test_interim_reads_the_done_cells_and_trains_nothing(
    split: Split, study: tuple[StudyResult, Path], tmp_path: Path
) -> None:
    import shutil

    import optuna

    from dotrec.errors import ConfigError
    from dotrec.study.status import interim_study

    result, finished_out = study
    out = tmp_path / "study"
    shutil.copytree(finished_out, out)
    url = f"sqlite:///{out / 'optuna.db'}"

    def trials() -> dict[str, int]:
        return {
            s.study_name: s.n_trials
            for s in optuna.get_all_study_summaries(url, include_best_trial=False)
        }

    before = trials()
    more = dataclasses.replace(CONFIG, dims=(4, 8, 16))  # size 16 not started
    interim = interim_study(split, more, out)
    assert [(c.model, c.size) for c in interim.cells] == [(c.model, c.size) for c in result.cells]
    for new, old in zip(interim.cells, result.cells, strict=True):
        assert new.tuning.best_params == old.tuning.best_params
        assert [r.summaries for r in new.runs] == [r.summaries for r in old.runs]
    assert trials() == before  # no trial run, no study created for size 16
    assert not (out / "cells" / "mf-d16").exists()
    md = write_report(interim, tmp_path / "interim")[0].read_text()
    assert md.startswith("# dotrec study: planted (interim: 6 of 9 cells)")
    assert "not yet: mf 16, ials 16, gmf 16." in md
    full = write_report(result, tmp_path / "full")[0].read_text()
    assert "interim" not in full.lower()
    # A cell whose final fits are short of the seeds is not done: here, none is.
    with pytest.raises(ConfigError, match="no cell of the study"):
        interim_study(split, dataclasses.replace(CONFIG, n_seeds=3), out)
    assert not list(out.glob("cells/*/seed2.json"))


def test_storage_label_names_no_machine_path_and_no_password(tmp_path: Path) -> None:
    from dotrec.tune import storage_label

    inside = f"sqlite:///{tmp_path.resolve() / 'db' / 'optuna.db'}"
    assert storage_label(inside, tmp_path) == "SQLite db/optuna.db in the study folder"
    elsewhere = f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert storage_label(elsewhere, tmp_path / "study") == elsewhere  # the user's own path
    assert storage_label("postgresql://u:secret@host/db", tmp_path) == "postgresql://u:***@host/db"


def test_parts_record_the_time_spent_and_the_report_shows_them(
    study: tuple[StudyResult, Path], tmp_path: Path
) -> None:
    import shutil

    from typer.testing import CliRunner

    from dotrec.cli import app
    from dotrec.errors import ArtifactError
    from dotrec.study.parts import PARTS_JSON, hours_spent, load_parts, record_part
    from dotrec.study.status import study_status

    result, finished_out = study
    out = tmp_path / "study"
    shutil.copytree(finished_out, out)
    accounted = sum(c.trial_seconds + c.fit_seconds for c in study_status(CONFIG, out)) / 3600
    assert load_parts(out) == []
    first = record_part(CONFIG, out, ended="2026-12-01T00:00Z", ran_on="machine A")
    assert first is not None
    assert (first.cells_done, first.cells) == (6, 6)
    assert (first.trials_finished, first.trials) == (12, 12)
    assert first.part_hours == first.total_hours == round(accounted, 3)
    # Nothing ran since: no part. Work the accounting lost (fits run again) is a part.
    assert record_part(CONFIG, out) is None
    second = record_part(CONFIG, out, extra_hours=1.5, note="fits run again", ran_on="B")
    assert second is not None and second.part_hours == 1.5
    assert second.total_hours == first.total_hours
    parts = load_parts(out)
    assert parts == [first, second]
    assert hours_spent(parts) == pytest.approx(first.part_hours + 1.5)
    table = (out / "parts.md").read_text().splitlines()
    assert table[-1] == (
        f"| 2 | {second.ended} | 6/6 | 12/12 | 1.50 | {hours_spent(parts):.2f} | B | "
        "fits run again |"
    )
    with pytest.raises(ValueError, match="extra_hours"):
        record_part(CONFIG, out, extra_hours=-1.0)
    args = ["study", "--status", "--out", str(out), "--models", "mf,ials,gmf", "--dims", "4,8"]
    r = CliRunner().invoke(app, [*args, "--trials", "2", "--seeds", "2"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert (
        f"recorded parts of the run: 2, machine time spent {hours_spent(parts):.2f} h" in r.output
    )

    md = write_report(result, tmp_path / "report", parts)[0].read_text()
    assert f"machine time spent over 2 parts of the run: {hours_spent(parts):.1f} h" in md
    section = md.split("## Parts of the run", 1)[1]
    assert f"machine time spent: {hours_spent(parts):.2f} h" in section
    assert "| 1 | 2026-12-01T00:00Z | 6/6 | 12/12 |" in section
    assert "| 2 |" in section and "fits run again" in section
    plain = write_report(result, tmp_path / "plain")[0].read_text()
    assert "Parts of the run" not in plain and "machine time spent" not in plain

    (out / PARTS_JSON).write_text('[{"ended": "x"}]')
    with pytest.raises(ArtifactError, match="parts.json"):
        load_parts(out)


class Killed(Exception):
    """Stands for the kill that ends a part of a long study."""


def test_a_stopped_final_fit_resumes_from_its_checkpoint(
    split: Split, study: tuple[StudyResult, Path], tmp_path: Path
) -> None:
    import json

    from dotrec.models import load_model

    result, finished_out = study
    done = next(c for c in result.cells if (c.model, c.size) == ("mf", 4))
    epochs = int(done.tuning.best_params["epochs"])
    assert epochs >= 3  # room to stop in epoch 2 after a save in epoch 1
    config = dataclasses.replace(CONFIG, models=("mf",), dims=(4,), checkpoint_every=0.0)
    events: list[tuple[int, int]] = []

    class Stop(SilentListener):
        def __init__(self, at: tuple[int, int] | None) -> None:
            self.at = at

        def retraining(self, seed_index: int, n_seeds: int, phase: str, epoch: int, _: int) -> None:
            if (seed_index, epoch) == self.at:
                raise Killed
            events.append((seed_index, epoch))

    out = tmp_path / "study"
    with pytest.raises(Killed):
        run_study(split, config, out, Stop((1, 2)))
    folder = out / "trial-checkpoints" / "planted_mf_d4"
    state = json.loads((folder / "final-seed1" / "state.json").read_text())
    assert state["saved"] == {"mf": 1} and state["elapsed"] > 0
    assert not (folder / "final-seed0").exists()  # a finished fit removes its checkpoint
    events.clear()
    again = run_study(split, config, out, Stop(None))
    # Seed 0 is reused; seed 1 trains on from epoch 2 and ends as if never stopped (one thread:
    # bit-reproducible), its time counted from its first start.
    assert events == [(1, e) for e in range(2, epochs + 1)]
    assert not folder.exists() or not any(folder.iterdir())
    (cell,) = again.cells
    assert cell.runs[1].fit_seconds >= state["elapsed"]
    for a, b in zip(cell.runs, done.runs, strict=True):
        for p in ("sampled", "full"):
            assert a.summaries[p] == b.summaries[p]
    u = np.repeat(np.arange(split.train.n_users), split.train.n_items)
    i = np.tile(np.arange(split.train.n_items), split.train.n_users)
    resumed = load_model(out / "cells" / "mf-d4" / "seed1")
    whole = load_model(finished_out / "cells" / "mf-d4" / "seed1")
    assert np.array_equal(resumed.score(u, i), whole.score(u, i))
