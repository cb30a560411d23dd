"""Latent explorer speed, in one run: (a) the server decoding a 20x20 Fig. 4 grid with the shipped MNIST
J = 2 model; (b) the whole page re-rendering after a control change (AppTest, the script's own time);
(c) how long the page takes to open in the browser (its first visit, and a reload with the model cached) and to
switch tabs; (d) the browser's frame rate and decode time while dragging on the morph pad (Chromium, Playwright).
Run: `python bench/explorer.py` with VAE_DATA_DIR set.
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from vae_app import session
from vae_app.sources import ModelFile, shipped_models

REPO = Path(__file__).resolve().parents[1]


def median_ms(f, repeats: int) -> float:
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def page_rerun_ms() -> float:
    from streamlit.testing.v1 import AppTest
    os.chdir(REPO)
    at = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/latent_explorer.py").run()
    at.selectbox[0].set_value("shipped: mnist-J2").run()
    at.session_state[session.EXPLORER_TAB] = "Manifold (Fig. 4)"  # only the open tab is drawn
    at.run()
    slider = lambda: next(s for s in at.slider if s.label == "Grid size")
    sizes = iter([10, 20] * 10)
    return median_ms(lambda: slider().set_value(next(sizes)).run(), 8)


def drag_frame_rate() -> tuple[float, float]:
    from playwright.sync_api import sync_playwright
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            opened = {}
            for visit in ("first", "again"):  # again: a reload, a new session on the model the server has cached
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/latent_explorer")
                page.frame_locator("iframe[src*='morph_pad']").locator("#pad").wait_for(timeout=120_000)
                opened[visit] = time.perf_counter() - start
            switched = {}
            for tab, shown in (("Manifold (Fig. 4)", ".js-plotly-plot"), ("Samples (Fig. 5)", "img"),
                               ("Reconstructions", "img"), ("Morph pad", "iframe")):
                start = time.perf_counter()
                page.get_by_role("tab", name=tab).click()
                page.locator("[role=tabpanel]:visible").locator(shown).first.wait_for(timeout=60_000)
                switched[tab] = time.perf_counter() - start
            print(f"(c) the page opens in {opened['first']:.2f} s, {opened['again']:.2f} s again (target < 3 s); "
                  "tab switches: " + ", ".join(f"{tab} {t:.2f} s" for tab, t in switched.items()) + " (target < 1 s)")
            page.get_by_role("combobox", name="Model").click()
            page.get_by_role("option", name="shipped: mnist-J2").click()
            page.wait_for_timeout(3000)
            frame = page.locator("iframe").first.content_frame
            frame.locator("#pad").wait_for(timeout=60_000)
            pad = frame.locator("#pad").bounding_box()
            page.mouse.move(pad["x"] + 20, pad["y"] + 20)
            page.mouse.down()
            fps, decode_ms = [], []
            start = time.monotonic()
            i = 0
            while time.monotonic() - start < 3.0:  # a circle, one pointer event about every 5 ms
                i += 1
                angle = i / 20
                page.mouse.move(pad["x"] + 150 + 100 * __import__("math").cos(angle), pad["y"] + 150 + 100 * __import__("math").sin(angle))
                if i % 25 == 0 and time.monotonic() - start > 1.0:
                    fps.append(frame.locator("body").evaluate("() => window.vaePad.fps"))
                    decode_ms.append(frame.locator("body").evaluate("() => window.vaePad.decodeMs"))
            page.mouse.up()
            browser.close()
        return statistics.median(fps), statistics.median(decode_ms)
    finally:
        server.terminate()


def main() -> None:
    model = ModelFile(shipped_models()["mnist-J2"]).load()
    grid_ms = median_ms(lambda: model.manifold(20), 50)
    print(f"(a) server: decode a 20x20 grid, MNIST J = 2 (784-500-2): {grid_ms:.1f} ms (target < 30 ms)")
    rerun_ms = page_rerun_ms()
    print(f"(b) Latent explorer page re-run after changing the grid size: {rerun_ms:.0f} ms (target < 1000 ms)")
    fps, decode_ms = drag_frame_rate()
    print(f"(d) browser while dragging on the pad, MNIST J = 2: {fps:.0f} frames/s, {decode_ms:.2f} ms per decode "
          f"(target >= 30 frames/s)")


if __name__ == "__main__":
    main()
