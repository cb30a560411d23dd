"""The paper's figures as data (one record each): which runs belong to a panel, and what they say of the paper's
claims."""
import math

import pytest
from conftest import wait_until

from vae_core import paper
from vae_core.config import TrainConfig
from vae_core.paper import APPENDIX_F, FIGURE_2, FIGURE_3, Curve, Panel


@pytest.mark.parametrize("change, panel", [
    ({"dataset": "mnist", "latent_dim": 5}, ("mnist", 5)),
    ({"dataset": "frey", "latent_dim": 20, "algorithm": "wake-sleep", "seed": 3, "samples": 10**8}, ("frey", 20)),
    ({"dataset": "frey", "latent_dim": 2, "lr": 0.02, "step": "autograd"}, ("frey", 2)),
    ({"dataset": "mnist", "latent_dim": 4}, None),  # not one of the paper's J
    ({"dataset": "frey", "latent_dim": 2, "estimator": "A"}, None),
    ({"dataset": "frey", "latent_dim": 2, "hidden": (400,)}, None),
    ({"dataset": "frey", "latent_dim": 2, "lr": 0.05}, None),  # outside Section 5's step sizes
    ({"dataset": "digits", "latent_dim": 2}, None),
    ({"dataset": "mnist", "latent_dim": 20, "algorithm": "iwae", "iw_k": 5}, ("mnist", 20)),  # beyond the paper
    ({"dataset": "mnist", "latent_dim": 20, "algorithm": "iwae", "iw_k": 5, "optimizer": "adam"}, None),
])
def test_a_run_belongs_to_a_panel_only_with_the_papers_settings(change, panel):
    assert FIGURE_2.panel_of(TrainConfig(**change).to_dict()) == (Panel(*panel) if panel else None)


def curves(aevb_test, ws_test, aevb_train=None, ws_train=None):
    samples = [10**4, 10**5, 10**6]
    return [Curve("a", "aevb", 0, samples, aevb_train or aevb_test, aevb_test),
            Curve("w", "wake-sleep", 0, samples, ws_train or ws_test, ws_test)]


def test_claims_read_the_curves():
    panels = {panel: [] for panel in FIGURE_2.panels}
    panels[Panel("frey", 2)] = curves([100, 500, 800], [50, 300, 600])
    panels[Panel("frey", 5)] = curves([100, 300, 400], [100, 450, 700])  # wake-sleep ahead here
    panels[Panel("frey", 10)] = [Curve("a", "aevb", 0, [10**4, 10**6], [90, 790], [100, 800])]
    verdicts = paper.claims(FIGURE_2, panels)
    better, faster = verdicts["Frey Face J = 2"]
    assert better.holds is True and better.evidence == "test bound at 1,000,000 samples: AEVB 800.00, wake-sleep 600.00"
    assert faster.holds is True and faster.evidence == ("wake-sleep's best training bound 600.00 was reached by AEVB at "
                                                        "215,443 samples, by wake-sleep at 1,000,000")
    assert verdicts["Frey Face J = 5"][0].holds is False
    # wake-sleep's 700 is beyond AEVB's whole curve, which went as far: AEVB is not the faster one
    assert verdicts["Frey Face J = 5"][1].holds is False
    assert [v.holds for v in verdicts["Frey Face J = 10"]] == [None, None]  # only one algorithm
    assert verdicts["Frey Face J = 10"][0].evidence == "needs runs of both algorithms"
    assert verdicts["MNIST J = 3"][0].holds is None
    overfitting = verdicts["Frey Face, all J"][0]  # J = 5's test bound (400) is 400 nats below J = 2's (800)
    assert overfitting.holds is False and "at 1,000,000 samples" in overfitting.evidence
    assert "J = 2: 800.00 (+0.00)" in overfitting.evidence and "J = 10: 800.00 (-10.00)" in overfitting.evidence
    assert overfitting.evidence.endswith("below a smaller J's at J = 5")
    panels[Panel("frey", 5)][0].test[-1] = 800.5  # now J = 10 is half a nat below J = 5: within the nat allowed
    assert paper.claims(FIGURE_2, panels)["Frey Face, all J"][0].holds is True
    missing = paper.missing(FIGURE_2, panels)
    assert (Panel("mnist", 3), "aevb") in missing and (Panel("frey", 2), "aevb") not in missing
    assert (Panel("frey", 10), "wake-sleep") in missing and len(missing) == 2 * 9 - 5


def test_a_curve_interpolates_on_the_log_axis():
    c = Curve("a", "aevb", 0, [100, 10_000], [0.0, 2.0], [0.0, 2.0])
    assert c.at(1000) == pytest.approx(1.0) and c.at(50) is None
    assert c.reaches(1.0) == 1000 and c.reaches(0.0) == 100 and c.reaches(2.5) is None


def test_each_panel_frames_its_curves_from_ten_thousand_samples():
    """A dip of 10^5 nats at a few hundred samples would flatten the rest of the panel: the y axis frames the curves
    from 10^4 samples on, padded by 5%; a panel with no point that far keeps Plotly's autorange."""
    from vae_app.views import paper as paper_views
    panels = {panel: [] for panel in FIGURE_2.panels}
    panels[Panel("mnist", 3)] = [Curve("a", "aevb", 0, [100, 300, 10**4, 10**6], [-500, -10**5, -150, -100],
                                       [-500, -10**5, -152, -102])]
    panels[Panel("mnist", 5)] = [Curve("b", "aevb", 0, [100, 1000], [-500, -300], [-500, -300])]
    charts = paper_views.draw(FIGURE_2, panels)["panels"]
    layouts = [charts[panel].layout for panel in FIGURE_2.panels]  # a chart per panel, in the paper's order
    assert layouts[0].yaxis.range == pytest.approx((-152 - 2.6, -100 + 2.6))
    assert layouts[1].yaxis.range is None
    # every panel on one x range, to the furthest run's samples; empty panels draw no invented axes; units on y
    assert all(tuple(layout.xaxis.range) == pytest.approx((3, 6.1)) for layout in layouts)
    assert [layout.xaxis.visible for layout in layouts] == [None, None] + [False] * (len(FIGURE_2.panels) - 2)
    assert all(layout.yaxis.title.text == "lower bound (nats per datapoint)" for layout in layouts)
    assert [layout.title.text for layout in layouts] == [panel.label for panel in FIGURE_2.panels]
    assert {(layout.width, layout.height) for layout in layouts[:2]} == {paper_views.PANEL_SIZE}  # fixed: they wrap


def test_a_figure_has_one_legend_for_all_its_panels():
    from vae_app.views import paper as paper_views
    panels = {panel: [] for panel in FIGURE_2.panels}
    for J in (3, 5):
        panels[Panel("mnist", J)] = [Curve(f"a{J}", "aevb", 0, [100, 1000], [-500, -300], [-510, -310]),
                                     Curve(f"w{J}", "wake-sleep", 0, [100, 1000], [-600, -400], [-610, -410])]
    charts = paper_views.draw(FIGURE_2, panels)
    legend = [(name, style["color"], style["dash"]) for name, style in charts["lines"].items()]
    assert legend == [("aevb (train)", "#1f77b4", "solid"), ("aevb (test)", "#1f77b4", "dash"),
                      ("wake-sleep (train)", "#d62728", "solid"), ("wake-sleep (test)", "#d62728", "dash")]
    first = charts["panels"][Panel("mnist", 3)]
    assert [t.name for t in first.data] == [name for name, _, _ in legend]  # the same names and styles as the legend
    assert [(t.line.color, t.line.dash) for t in first.data] == [(colour, dash) for _, colour, dash in legend]
    assert not any(t.showlegend for chart in charts["panels"].values() for t in chart.data)  # the legend says it once
    html = paper_views.legend_html(charts["lines"] | {"<b>x</b> (test)": {"color": "#000", "dash": "dot"}})
    assert html.count("solid #1f77b4") == 1 and html.count("dashed #d62728") == 1 and "dotted #000" in html
    assert "&lt;b&gt;x&lt;/b&gt; (test)" in html and "<b>" not in html  # a name is text, never markup
    assert {(c.layout.width, c.layout.height) for p, c in charts["panels"].items() if not panels[p]} == {
        paper_views.EMPTY_PANEL_SIZE}  # an empty panel is its title and a word


def test_a_run_repeated_with_the_same_settings_and_seed_counts_once_the_furthest():
    """A sweep's short run beside a longer run of the same settings and seed (in another folder) is one experiment:
    the panel keeps the longer curve, and another seed stays."""
    short = Curve("a", "aevb", 0, [100, 1000], [-200.0, -150.0], [-201.0, -151.0], path="s1/a")
    long = Curve("a", "aevb", 0, [100, 1000, 10000], [-200.0, -150.0, -120.0], [-201.0, -151.0, -121.0], path="s2/a")
    other_seed = Curve("b", "aevb", 1, [100], [-210.0], [-211.0], path="s2/b")
    sleep = Curve("c", "wake-sleep", 0, [100], [-220.0], [-221.0], path="s2/c")
    assert paper._one_per_seed([short, other_seed, long, sleep]) == [other_seed, long, sleep]


@pytest.mark.slow
def test_the_paper_page_draws_figure_2_from_the_runs_and_trains_what_is_missing(monkeypatch, tmp_path, repo, data_dir):
    from streamlit.testing.v1 import AppTest

    from vae_app.views import pool
    from vae_core.training import Trainer
    for algorithm in ("aevb", "wake-sleep", "full-vb"):
        Trainer.from_config(TrainConfig(dataset="frey", latent_dim=2, algorithm=algorithm, samples=3000, lr=0.02,
                                        data_dir=str(data_dir)), runs_dir=tmp_path / "runs").run()
    Trainer.from_config(TrainConfig(dataset="digits", samples=2000, lr=0.02), runs_dir=tmp_path / "runs").run()  # not Fig. 2
    from vae_core import runs
    table = paper.report([runs.read_run(p) for p in runs.list_runs(tmp_path / "runs")], FIGURE_2)
    frey = next(line for line in table.splitlines() if line.startswith("| Frey Face J = 2 | aevb |"))
    assert frey.split(" | ")[-2] == "1" and frey.endswith(" s |")  # one seed, and its wall time ("12 s")
    assert "| MNIST J = 3 | aevb |" in table and "| Frey Face J = 2 | AEVB reaches a better bound |" in table
    monkeypatch.chdir(repo)
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    frey_only = tmp_path / "data"  # MNIST is not here: its missing runs cannot be trained, and are left missing
    frey_only.mkdir()
    (frey_only / "frey").symlink_to(data_dir / "frey")
    monkeypatch.setenv("VAE_DATA_DIR", str(frey_only))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("VAE_OFFLINE", "1")
    at = AppTest.from_file(str(repo / "dashboard.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/paper.py").run()
    assert not at.exception
    legends = [e.proto.body for e in at.get("html")]  # a legend per figure with runs, then a chart per panel
    figure = legends[0]
    assert figure.count("aevb (train)") == 1 and figure.count("wake-sleep (test)") == 1
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert len(specs) == len(FIGURE_2.panels) + len(paper.FIGURE_3.panels) + len(paper.APPENDIX_F.panels)
    frey = next(spec for spec in specs if '"text":"Frey Face J = 2"' in spec)
    assert frey.count('"name":"aevb (train)"') == 1 and frey.count('"name":"wake-sleep (test)"') == 1
    assert any('"text":"MNIST J = 200"' in spec for spec in specs)
    assert any("N_train = 50,000" in spec for spec in specs)  # Figure 3 beside it
    appendix_f = legends[1]  # full VB against AEVB, from the same Frey Face runs (Figure 3 has none: no legend)
    assert appendix_f.count("aevb (test)") == 1 and appendix_f.count("full-vb, log") == 2
    assert "wake-sleep" not in appendix_f
    cost = [c.value for c in at.caption if "runs of 1,000,000 samples" in c.value]
    assert cost and cost[0].startswith("6 runs of 1,000,000 samples: about ") and "at a time" in cost[0]  # Frey's
    claims = at.dataframe[0].value
    full_vb = claims[claims["figure"] == "App. F"].set_index("where")
    assert full_vb.loc["Frey Face J = 2"]["verdict"] in ("✓ holds", "✗ does not hold")
    assert full_vb.loc["MNIST J = 20"]["verdict"] == "— not yet"
    claims = claims[claims["figure"] == "Fig. 2"].set_index("where")
    assert claims.loc["Frey Face J = 2"].iloc[0]["verdict"] in ("✓ holds", "✗ does not hold")
    assert list(claims.loc["MNIST J = 3"]["verdict"]) == ["— not yet", "— not yet"]
    missing = at.dataframe[1].value
    assert len(missing) == 16 + 6 and not ((missing["dataset"] == "frey") & (missing["J"] == 2)).any()
    at.text_input(key="missing_budget").set_value("1000")
    before = len(pool().sweeps)
    at.button(key="train_missing").click().run()
    job = pool().sweeps[-1]
    assert at.get("progress")[0].proto.text.startswith(f"sweep {job.sweep_dir.name} of 6 runs, 2 at a time on local Ray")
    assert at.button(key="train_missing").disabled and len(pool().sweeps) == before + 1  # off at once: one sweep
    assert pool().busy == 2  # the sweep takes the pool's free slots
    wait_until(lambda: not job.active, "the sweep to end", poll=1.0)
    assert job.progress() == {"finished": 6, "failed": 0, "training": 0, "waiting": 0}, job.log.read_text()[-2000:]
    at.run()
    assert at.get("progress")[0].proto.text.startswith(f"sweep {job.sweep_dir.name} of 6 runs, 2 at a time on local "
                                                       f"Ray: 6 finished")
    missing = at.dataframe[1].value
    assert len(missing) == 10 + 6 and set(missing["dataset"]) == {"mnist"}  # every Frey Face panel has both now


def test_figure_3_runs_and_claims():
    small, full = FIGURE_3.panels
    assert FIGURE_3.panel_of(FIGURE_3.config(small, "mcem", 10**6, seed=2).to_dict()) == small == Panel("mnist", 3, 1000)
    assert FIGURE_3.panel_of(FIGURE_3.config(full, "aevb", 10**6).to_dict()) == full
    assert FIGURE_3.panel_of(TrainConfig(dataset="mnist", latent_dim=3, hidden=(100,), train_size=1000).to_dict()) is None
    assert FIGURE_2.panel_of(FIGURE_3.config(full, "aevb", 10**6).to_dict()) is None  # 100 hidden units: not Fig. 2's
    panels = {small: [Curve("a", "aevb", 0, [10**4, 10**6], [-140, -120], [-150, -125]),
                      Curve("m", "mcem", 0, [10**4, 10**6], [-150, -121], [-160, -124.5])], full: []}
    verdicts = paper.claims(FIGURE_3, panels)
    better, wake_sleep = verdicts["N_train = 1,000"]
    assert better.claim == "AEVB matches or beats mcem"
    assert better.holds is True and better.evidence == "test log p(x) at 1,000,000 samples: AEVB -125.00, mcem -124.50"
    assert wake_sleep.holds is None and verdicts["N_train = 50,000"][0].holds is None
    assert paper.missing(FIGURE_3, panels) == [(small, "wake-sleep"), (full, "aevb"), (full, "wake-sleep"), (full, "mcem")]


def test_appendix_f_takes_aevb_and_full_vb_at_any_initial_variance():
    full_vb = TrainConfig(dataset="frey", latent_dim=2, algorithm="full-vb", vb_logvar=-6.0).to_dict()
    assert APPENDIX_F.panel_of(full_vb) == Panel("frey", 2) and FIGURE_2.panel_of(full_vb) is None
    assert APPENDIX_F.panel_of(TrainConfig(dataset="mnist", latent_dim=20).to_dict()) == Panel("mnist", 20)
    assert APPENDIX_F.panel_of(TrainConfig(dataset="frey", latent_dim=2, algorithm="wake-sleep").to_dict()) is None
    assert APPENDIX_F.panel_of(TrainConfig(dataset="frey", latent_dim=5, algorithm="full-vb").to_dict()) is None
    panels = {Panel("frey", 2): [Curve("a", "aevb", 0, [10**4, 10**6], [700, 770], [710, 790]),
                                 Curve("v", "full-vb", 0, [10**4, 10**6], [300, 500], [310, 505], -6.0),
                                 Curve("w", "full-vb", 0, [10**4, 10**5], [690, 760], [700, 780], -10.0)],
              Panel("mnist", 20): []}
    verdicts = paper.claims(APPENDIX_F, panels)
    assert [(v.claim, v.holds) for v in verdicts["Frey Face J = 2"]] == [
        ("Full VB (log σ²₀ = -10) reaches AEVB's bound", True), ("Full VB (log σ²₀ = -6) reaches AEVB's bound", False)]
    # at the largest budget both reached, 10^5: AEVB 750 (halfway on the log axis), this full VB 780
    assert verdicts["Frey Face J = 2"][0].evidence == "test bound at 100,000 samples: AEVB 750.00, full VB 780.00"
    assert [(v.claim, v.holds) for v in verdicts["MNIST J = 20"]] == [("Full VB reaches AEVB's bound", None)]


def test_every_seed_counts_and_a_seed_that_cannot_decide_says_so():
    """Three AEVB seeds and two wake-sleep seeds per panel, as `sweep --figure 2 --seed 0 1 2` leaves them: the bounds
    are compared where every seed has got to, and wake-sleep's target is the best bound each of its seeds reached."""
    s = [10**4, 10**5, 10**6]
    panels = {panel: [] for panel in FIGURE_2.panels}
    panels[Panel("frey", 2)] = [Curve("a0", "aevb", 0, s, [100, 500, 800], [100, 500, 800]),
                                Curve("a1", "aevb", 1, s, [100, 400, 700], [100, 400, 700]),
                                Curve("a2", "aevb", 2, s[:2], [100, 450], [100, 450]),  # still training: at 10^5
                                Curve("w0", "wake-sleep", 0, s, [50, 300, 600], [50, 300, 600]),
                                Curve("w1", "wake-sleep", 1, s, [50, 200, 400], [50, 200, 400])]  # never reaches 600
    panels[Panel("frey", 5)] = [Curve("a0", "aevb", 0, s[:2], [100, 200], [100, 200]),
                                Curve("w0", "wake-sleep", 0, s, [50, 300, 600], [50, 300, 600])]
    verdicts = paper.claims(FIGURE_2, panels)
    better, faster = verdicts["Frey Face J = 2"]
    # at 10^5, where all five got to: AEVB (500 + 400 + 450) / 3, wake-sleep (300 + 200) / 2
    assert better.holds is True and better.evidence == ("test bound at 100,000 samples: AEVB 450.00, wake-sleep 250.00 "
                                                        "(the means of 3 and 2 seeds)")
    # 400, w1's best: w0 crosses it a third of a decade after 10^5, w1 at 10^6; the AEVB seeds at 56,234, 10^5, 71,969
    assert faster.holds is True and faster.evidence == (
        "wake-sleep's best training bound 400.00 (the lowest of its seeds' bests) was reached by AEVB at 76,068 samples on "
        "average (seed 0: 56,234; seed 1: 100,000; seed 2: 71,969), by wake-sleep at 607,722 on average (seed 0: "
        "215,443; seed 1: 1,000,000)")
    better, faster = verdicts["Frey Face J = 5"]
    assert better.holds is False and better.evidence == "test bound at 100,000 samples: AEVB 200.00, wake-sleep 300.00"
    # AEVB's curve ends at 10^5, wake-sleep got to its 600 at 10^6: AEVB may yet get there sooner
    assert faster.holds is None and faster.evidence == (
        "wake-sleep's best training bound 600.00 was reached by wake-sleep at 1,000,000 samples; AEVB's seed 0 has "
        "not reached it by 100,000, where its curve ends (undecided until then)")
    assert "J = 2: 450.00 (+0.00), J = 5: 200.00 (+0.00)" in verdicts["Frey Face, all J"][0].evidence  # at 10^5


def fake_record(name: str, train: list[float], samples=(10**4, 10**5, 10**6), seconds: float = 60.0, folder=None,
                **settings):
    """A finished run of the paper's settings as `read_run` gives it, without training one: its evaluations (train and
    test alike) and its checkpoint's training time."""
    from pathlib import Path

    from vae_core.runs import RunRecord
    config = TrainConfig(dataset="frey", latent_dim=2, samples=samples[-1], **settings).to_dict()
    rows = [{"kind": "evaluation", "samples_evaluated": n, "train_lower_bound": b, "test_lower_bound": b, "seconds": 0.0}
            for n, b in zip(samples, train)]
    return RunRecord(Path(folder or "sweep") / name, {"train_config": config}, {"state": "finished"}, metrics=rows,
                     progress={"step": samples[-1] // 100, "position": 0, "seconds": seconds,
                               "samples_evaluated": samples[-1]})


def test_the_report_counts_every_seed_of_a_sweep():
    """`report --figure 2` on a sweep of `--seed 0 1 2`: each row means over all its seeds, blank at a budget one seed
    has not reached, and the claims are judged (no traceback when a wake-sleep seed never reaches another's best)."""
    records = [fake_record("a0", [500, 600, 800], seed=0), fake_record("a1", [400, 700, 900], seed=1),
               fake_record("a2", [450, 650], samples=(10**4, 3 * 10**5), seed=2),
               fake_record("w0", [300, 500, 600], algorithm="wake-sleep", seed=0),
               fake_record("w1", [200, 300, 400], algorithm="wake-sleep", seed=1),
               fake_record("w2", [250, 400, 500], algorithm="wake-sleep", seed=2)]
    table = paper.report(records, FIGURE_2)
    aevb = next(line for line in table.splitlines() if line.startswith("| Frey Face J = 2 | aevb |")).split(" | ")
    # a2 at 10^5, log(10) / log(30) of the log way from 10^4 to 3·10^5: 450 + (650 - 450) · log(10) / log(30)
    assert aevb[2] == f"{(600 + 700 + 450 + 200 * math.log(10) / math.log(30)) / 3:.2f}" == "628.47"
    assert aevb[6:8] == ["", ""] and aevb[-2] == "3"  # a2 has not got to 10^6: no mean of the other two there
    assert aevb[-1] == "1 min 0 s |"  # each trained for 60 s
    assert "| Frey Face J = 2 | AEVB reaches a better bound | holds | test bound at 300,000 samples:" in table
    assert "| Frey Face J = 2 | AEVB converges faster | holds |" in table


def test_a_continued_runs_wall_time_is_its_whole_training_time(tmp_path):
    """A run trained for 95 s, stopped, and continued for 5 s more: the report's wall time is the 100 s its checkpoint
    has counted, not the 5 s since its last holder took the lock (which each holder rewrites)."""
    from vae_core import runs
    record = fake_record("a0", [500, 600, 800], seconds=100.0, folder=tmp_path)
    record.path.mkdir()
    runs.write_json(record.path / runs.LOCK, {"by": "the library", "since": 1000.0})
    record.status["updated"] = 1005.0
    record.metrics[-1]["seconds"] = 100.0
    assert paper.training_seconds(record) == 100.0
    row = next(line for line in paper.report([record], FIGURE_2).splitlines() if line.startswith("| Frey Face J = 2 | aevb |"))
    assert row.endswith("| 1 | 1 min 40 s |")


def test_iwae_runs_are_drawn_on_figure_2_a_line_per_k_neither_missing_nor_trained_by_its_sweep():
    """An IWAE run with Section 5's settings is a line of Figure 2 (one per K), its ELBO beside AEVB's and an
    "IW bound" row below it in the report; the figure's sweep trains only the paper's algorithms and lists no IWAE run
    as missing."""
    records = [fake_record("a0", [500, 600, 800]), fake_record("w0", [300, 500, 600], algorithm="wake-sleep")]
    for name, k, elbo in (("i5", 5, [490, 590, 790]), ("i50", 50, [480, 580, 780])):
        record = fake_record(name, elbo, algorithm="iwae", iw_k=k)
        for row in record.metrics:
            row["train_iw_bound"] = row["test_iw_bound"] = row["test_lower_bound"] + k / 5
        records.append(record)
    panels = paper.curves(FIGURE_2, records)
    lines = panels[Panel("frey", 2)]
    assert sorted((c.algorithm, c.variant) for c in lines) == [("aevb", None), ("iwae", 5), ("iwae", 50),
                                                                ("wake-sleep", None)]
    assert next(c for c in lines if c.variant == 50).iw_test == [490, 590, 790]
    assert (Panel("frey", 2), "iwae") not in paper.missing(FIGURE_2, panels)
    assert {c["algorithm"] for c in FIGURE_2.configs(10**5, [0])} == {"aevb", "wake-sleep"}
    table = paper.report(records, FIGURE_2)
    row = lambda name: next(line for line in table.splitlines() if line.startswith(f"| Frey Face J = 2 | {name} |"))
    assert row("iwae (K = 5)").split(" | ")[6:8] == ["790.00", "790.00"]  # the ELBO at 10^6
    assert row("iwae (K = 50), IW bound").split(" | ")[6:8] == ["790.00", "790.00"]  # L_50, 10 nats above it
    assert "| MNIST J = 3 | iwae" not in table  # no IWAE run there: no row
    from vae_app.views import paper as paper_views
    names = set(paper_views.draw(FIGURE_2, panels)["lines"])
    assert {"iwae, K = 5 (train)", "iwae, K = 50 (test IW bound)", "aevb (test)"} <= names


def test_train_what_is_missing_says_its_cost_from_the_pace_of_finished_runs_like_them(tmp_path):
    """Before a sweep starts, the Paper page says what it costs: each missing run at the median pace of this
    machine's finished runs of its data, algorithm and evaluation, the sweep's slots at a time."""
    from vae_app.views import paper as paper_views
    from vae_core import runs

    def finished(name, rate, **settings):
        config = TrainConfig(**settings).to_dict()
        return runs.RunRecord(tmp_path / name, config={"train_config": config},
                              status={"state": "finished", "samples_per_second": rate})
    frey = dict(dataset="frey", latent_dim=2, samples=10**5, lr=0.02)
    records = [finished("a", 1000.0, **frey), finished("b", 3000.0, **frey), finished("c", 50.0, **frey, seed=1,
                                                                                          algorithm="wake-sleep"),
               runs.RunRecord(tmp_path / "d", config={"train_config": TrainConfig(**frey).to_dict()},
                              status={"state": "failed", "samples_per_second": 1.0})]  # not finished: no pace
    panels = {panel: [] for panel in FIGURE_2.panels}
    curves = {figure: {panel: [] for panel in figure.panels} for figure in paper_views.TRAINABLE}
    curves[FIGURE_2] = panels
    missing = paper_views._missing_configs(curves, 10**6)  # Figures 2 and 3, where their data is here
    frey_runs = [c for c in missing if c["dataset"] == "frey"]
    assert frey_runs, "the Frey Face data is needed (VAE_DATA_DIR)"
    said = paper_views.missing_cost(curves, 10**6, records, slots=2)
    # Frey's AEVB runs at the median of 1000 and 3000 samples/s, its wake-sleep runs at 50; the others (MNIST's,
    # none finished here) are each taken as long as those on average; two at a time
    aevb = sum(1 for c in frey_runs if c["algorithm"] == "aevb")
    sleep = sum(1 for c in frey_runs if c["algorithm"] == "wake-sleep")
    timed = aevb * 10**6 / 2000 + sleep * 10**6 / 50
    expected = timed * len(missing) / (aevb + sleep) / 2
    from vae_core.formatting import format_duration
    assert said.startswith(f"{len(missing)} runs of 1,000,000 samples: about {format_duration(expected)}, 2 at a time")
    assert said.endswith(f"({len(missing) - aevb - sleep} of them are like no run finished here: each taken as long "
                         f"as the others on average).")
    assert paper_views.missing_cost(curves, 10**6, [], slots=2).endswith("so their time is not known.")

