"""The app in a real browser: Debian's chromium driven by Playwright, against `streamlit run` on localhost."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PATIENCE

WAIT_MS = int(PATIENCE * 1000)  # Playwright's waits, in milliseconds

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output"


def network_address() -> str | None:
    """This machine's address on its network (not loopback), or None where it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # chooses the outgoing interface; sends nothing
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.fixture
def server(tmp_path, data_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "VAE_RUNS_DIR": str(tmp_path / "runs"), "VAE_DATA_DIR": str(data_dir)}
    log = tmp_path / "server.log"  # the server's output and its training processes'
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port)],
                               cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    outside = network_address()
    if outside is not None:  # .streamlit/config.toml binds loopback only: the machine's own address is refused
        with pytest.raises(OSError):
            socket.create_connection((outside, port), timeout=2).close()
    yield f"http://127.0.0.1:{port}", log
    process.terminate()
    process.wait(timeout=PATIENCE)


POINTS = """() => { const plot = document.querySelector('.js-plotly-plot');
    return plot && plot._fullData ? plot._fullData.reduce((n, trace) => n + (trace._length || 0), 0) : 0; }"""


def expect_app_navigation(page):
    """The sidebar lists dashboard.py's pages by title, not a list of file names."""
    from playwright.sync_api import expect
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav).to_contain_text("Latent explorer")
    expect(nav).not_to_contain_text("dashboard")


def chart_frame(page):
    """The iframe of the Train page's first live chart (the `live_chart` component), once it has drawn points."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        try:
            iframe = page.locator("iframe[src*='live_chart']").first
            frame = iframe.element_handle(timeout=1_000).content_frame() if iframe.count() else None
            if frame is not None and frame.evaluate(f"({POINTS})()") > 0:
                return frame
        except Error:  # the iframe is being (re)created by a rerun: look again
            pass
        page.wait_for_timeout(250)
    raise AssertionError("the Train page's chart never drew a point")


def chart_points(frame) -> int:
    return frame.evaluate(f"({POINTS})()")


@pytest.fixture
def page(server, chromium):
    """A Chromium page on the app; screenshots go to test-output/."""
    OUTPUT.mkdir(exist_ok=True)
    page = chromium.new_page(viewport={"width": 1400, "height": 1800})
    page.app_url, page.app_log = server
    return page


@pytest.mark.slow
def test_train_watch_the_chart_grow_reload_reattach_and_stop(page):
    from playwright.sync_api import expect

    server = page.app_url
    page.goto(server + "/train")
    expect(page.get_by_text("Start training")).to_be_visible(timeout=WAIT_MS)
    expect_app_navigation(page)  # even though /train was the server's first request
    page.get_by_role("textbox", name="Training samples to evaluate").fill("1e8")
    page.get_by_role("textbox", name="Step size").fill("0.02")
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)  # no developer's toolbar
    page.get_by_role("button", name="Start training").dblclick()  # a double click makes one run
    frame = chart_frame(page)
    first = chart_points(frame)
    frame.wait_for_function(f"() => ({POINTS})() > {first}", timeout=WAIT_MS)  # the chart gains points
    assert chart_points(frame) > first > 0
    runs_dir = page.app_log.parent / "runs"
    assert len([p for p in runs_dir.iterdir() if not p.name.startswith(".")]) == 1, list(runs_dir.iterdir())
    page.set_viewport_size({"width": 1400, "height": 900})  # the live run first: on the first screen
    page.evaluate("window.scrollTo(0, 0)")
    main = page.get_by_test_id("stMainBlockContainer")
    for seen in (main.get_by_role("button", name="Pause"), page.locator("iframe[src*='live_chart']").first):
        box = seen.bounding_box()
        assert box is not None and box["y"] < 900 - 40, box
    page.screenshot(path=str(OUTPUT / "train-first-screen-1400x900.png"))
    page.set_viewport_size({"width": 1400, "height": 1800})

    page.get_by_role("link", name="Runs").click()  # another page while it trains
    expect(page.get_by_text("Overlay the curves of")).to_be_visible(timeout=WAIT_MS)
    page.reload()  # a browser refresh: a new session, the run goes on in its worker
    page.goto(server + "/train")
    main = page.get_by_test_id("stMainBlockContainer")  # not the header's buttons
    expect(main.get_by_role("button", name="Pause")).to_be_visible(timeout=WAIT_MS)  # this browser's run, at once
    expect(page.get_by_text("training in another open session")).to_have_count(0)
    assert chart_points(chart_frame(page)) > 0  # the re-attached run's curves, drawn again
    main.get_by_role("button", name="Pause").click()
    expect(main.get_by_role("button", name="Resume")).to_be_enabled(timeout=WAIT_MS)  # the page follows the run
    expect(main.get_by_role("button", name="Pause")).to_be_disabled()
    main.get_by_role("button", name="Resume").click()
    expect(main.get_by_role("button", name="Pause")).to_be_enabled(timeout=WAIT_MS)
    main.get_by_role("button", name="Stop").click()
    expect(chart_frame(page).get_by_text("stopped:")).to_be_visible(timeout=WAIT_MS)  # the progress line
    expect_app_navigation(page)
    page.screenshot(path=str(OUTPUT / "train-page.png"), full_page=True)
    assert (OUTPUT / "train-page.png").stat().st_size > 10_000
    # Nothing went wrong out of sight: no traceback, and no training process ran the app's script again
    # (Streamlit's bare-mode warnings are what that looked like).
    log = page.app_log.read_text()
    assert "Traceback" not in log and "ScriptRunContext" not in log, log


@pytest.mark.slow
def test_morph_pad_follows_the_pointer_while_dragging(page):
    from playwright.sync_api import expect

    page.goto(page.app_url + "/latent_explorer")
    frame_element = page.locator("iframe").first
    expect(frame_element).to_be_visible(timeout=WAIT_MS)
    frame = frame_element.content_frame
    expect(frame.locator("#pad")).to_be_visible(timeout=WAIT_MS)
    before = frame.locator("body").evaluate("() => Array.from(window.vaePad.image())")
    box = frame_element.bounding_box()
    pad = frame.locator("#pad").bounding_box()
    x0, y0 = pad["x"] + 40, pad["y"] + 40
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(60):  # a drag across the pad, one pointer event per step
        page.mouse.move(x0 + 3.5 * i, y0 + 3.5 * i)
    seen_while_dragging = frame.locator("body").evaluate("() => Array.from(window.vaePad.image())")
    fps = frame.locator("body").evaluate("() => window.vaePad.fps")
    page.mouse.up()
    page.screenshot(path=str(OUTPUT / "latent-explorer.png"), full_page=True)
    assert box is not None and fps > 0
    change = max(abs(a - b) for a, b in zip(before, seen_while_dragging))
    assert change > 0.1  # the face changed while the button was still down


@pytest.mark.slow
def test_live_charts_poll_their_feed_append_new_rows_and_follow_the_theme(chromium, tmp_path):
    """The Train page's charts, served over HTTP as Streamlit serves them and fed as the app feeds them (a feed file
    they fetch on their own): the first rows draw the charts, later ones are appended (extendTraces, no new draw),
    the KL has its own axis, a non-finite value is a gap, dark mode is followed, and polling ends with the run."""
    import functools
    import http.server
    import json
    import threading

    from vae_app.components import FEEDS, LiveFeed, live_chart_dir
    folder = tmp_path / "component"
    folder.mkdir()
    for name in ("index.html", "plotly.min.js"):
        (folder / name).symlink_to(live_chart_dir() / name)
    (folder / "feeds").mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/index.html")
    feed = LiveFeed(every=0.0, part_rows=20, folder=folder, name=f"{FEEDS}/run.json")  # as the app server writes it, 20 rows a part

    def write(minibatch, evaluation, state="running"):
        rows = [{"kind": "evaluation", "samples_evaluated": e[0], "train_lower_bound": e[1], "test_lower_bound": e[2]}
                for e in evaluation] + [{"kind": "minibatch", "samples_evaluated": r[0], "lower_bound": r[1],
                                         "reconstruction": r[2], "kl": r[3]} for r in minibatch]
        feed.update(rows, state, lambda: {"state": state, "fraction": len(minibatch) / 100,
                                          "text": f"{state}: {len(minibatch)} rows"})

    def render(theme=None):
        page.evaluate("a => window.postMessage({type: 'streamlit:render', args: a.args, theme: a.theme}, '*')",
                      {"args": {"feed": feed.name, "state": "running", "active": True, "log_x": True,
                                "smoothing": 0.6}, "theme": theme})

    page.evaluate("""() => { window.asked = [];  // the values the component sends the page: reruns it asks for
        window.addEventListener('message', e => { if (e.data.type === 'streamlit:setComponentValue') window.asked.push(e.data.value); }); }""")

    def polled(more):
        target = page.evaluate("() => window.liveCharts.polls") + more
        page.wait_for_function(f"() => window.liveCharts.polls >= {target}", timeout=WAIT_MS)

    rows = [[100 * (i + 1), -500 + i, -480 + i, 20.0] for i in range(50)]
    evaluations = [[100, -520.0, -519.0, None, None]]
    write(rows, evaluations)  # two sealed parts of 20 rows, and 10 in the feed
    assert json.loads((folder / feed.name).read_text())["parts"] == 2
    render()
    polled(1)
    draws = page.evaluate("() => window.liveCharts.draws")
    assert draws >= 1 and page.evaluate("() => window.liveCharts.rows()") == 51
    assert page.evaluate("() => window.liveCharts.progress()") == "running: 50 rows"  # the progress line, from the feed
    assert page.evaluate("() => document.getElementById('progress-bar').style.width") == "50%"
    rows += [[5100 + 100 * i, -400.0, -380.0, None if i == 0 else 20.0] for i in range(10)]  # None: a NaN sent
    write(rows, evaluations)
    polled(2)  # the charts fetched it on their own
    assert page.evaluate("() => window.liveCharts.draws") == draws  # appended, not drawn anew
    assert page.evaluate("() => window.liveCharts.appends") >= 1
    terms = page.evaluate("() => document.getElementById('terms').data.map(t => [t.name, t.yaxis || 'y', t.x.length])")
    assert [t[1] for t in terms] == ["y", "y", "y2", "y2"] and terms[1][2] == 60  # KL on the right axis; 60 points
    x = page.evaluate("() => document.getElementById('terms').data[0].x")
    assert x == [r[0] for r in rows]  # every row once, in order: parts 0 and 1, the feed's 10, then part 2's last 10
    kl = page.evaluate("() => document.getElementById('terms').data[2].y")
    assert kl[50] is None  # the gap
    render(theme={"base": "dark", "textColor": "#fafafa"})
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.getElementById('curves').layout.font.color") == "#fafafa"
    assert page.evaluate("() => document.getElementById('curves').data[0].opacity") == 0.6  # the raw line, seen on dark
    assert page.evaluate("() => document.getElementById('terms').layout.yaxis2.tickmode") == "auto"  # round KL ticks
    assert page.evaluate("() => window.liveCharts.draws") == draws + 1  # a new theme: drawn anew
    assert page.evaluate("() => window.asked") == []  # the run's state is the one the page drew: no rerun
    feed = LiveFeed(every=0.0, part_rows=20, folder=folder, name=f"{FEEDS}/run.json")  # resumed from an earlier checkpoint: fewer rows
    write(rows[:30], evaluations)
    polled(2)
    assert page.evaluate("() => document.getElementById('terms').data[0].x") == [r[0] for r in rows[:30]]  # all again
    write(rows[:30], evaluations, state="finished")  # the run has ended
    polled(1)
    assert page.evaluate("() => window.liveCharts.progress()") == "finished: 30 rows"
    assert page.evaluate("() => window.asked") == ["finished"]  # one rerun, so that the page's buttons follow
    polls = page.evaluate("() => window.liveCharts.polls")
    page.wait_for_timeout(2_500)
    assert page.evaluate("() => window.liveCharts.polls") == polls  # and the charts stopped fetching
    httpd.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_in_light_and_dark_at_1400_and_800_px(server, chromium, scheme):
    """Each page, as a new user opens it, in the system's light or dark scheme (Streamlit follows it) and at two
    widths: no exception on the page, the morph pad whole inside the window at 800 px, its labels in the theme's
    text colour; screenshots in test-output/ to look at."""
    from playwright.sync_api import expect

    url, log = server
    OUTPUT.mkdir(exist_ok=True)
    for width in (1400, 800):
        page = chromium.new_page(viewport={"width": width, "height": 1400}, color_scheme=scheme)
        for path, ready in (("", "Datasets on this machine"), ("train", "Start training"),
                            ("latent_explorer", "Morph pad"), ("estimator_variance", "Compute"), ("runs", "No runs yet"),
                            ("paper", "Missing runs")):
            page.goto(f"{url}/{path}")
            expect(page.get_by_text(ready).first).to_be_visible(timeout=WAIT_MS)
            page.wait_for_timeout(1500)
            assert page.get_by_test_id("stException").count() == 0, path
            page.screenshot(path=str(OUTPUT / f"{path or 'home'}-{scheme}-{width}.png"), full_page=True)
            if path == "latent_explorer":
                frame = page.frame_locator("iframe[src*='morph_pad']")
                pad = frame.locator("#pad")
                expect(pad).to_be_visible(timeout=WAIT_MS)
                box = page.locator("iframe[src*='morph_pad']").bounding_box()
                image = frame.locator("#image").bounding_box()
                assert image["x"] + image["width"] <= box["x"] + box["width"] + 1  # the image is not cut off
                assert "frames/s" not in frame.locator("#fps").inner_text()  # no frame rate before anyone drags
                colour = frame.locator(".stat").first.evaluate("e => getComputedStyle(e).color")
                assert (colour == "rgb(163, 168, 184)") == (scheme == "dark"), colour  # readable on the theme
        page.close()
    assert "Traceback" not in log.read_text()
