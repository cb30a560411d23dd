import uuid

import streamlit as st

import pages  # noqa: F401  (first: see pages/__init__.py)

from vae_app import figures
from vae_app.views import pool
from vae_app.views import runs as views
from vae_app.workers import PoolFull
from vae_core import RunError

st.title("Runs")
live = {str(w.run_dir): str(w.state) for w in pool().active_workers()}
table = views.run_table(live=live)
if table.empty:
    st.info("No runs yet: train one on the Train page, or with `python -m vae_core train`.")
    st.stop()
st.dataframe(table.drop(columns="path"), hide_index=True, width="stretch", key="table")
damaged = table[table["problems"] != ""]
for _, row in damaged.iterrows():
    st.warning(f"{row['run']} is damaged: {row['problems']}")

chosen = st.multiselect("Overlay the curves of", table["run"], default=list(table["run"][:1]), key="overlay")
log_x = st.toggle("Log-scale x axis", value=True, key="log_x")
paths = dict(zip(table["run"], table["path"]))
if chosen:
    st.plotly_chart(figures.learning_curves({r: views.run_metrics(paths[r]) for r in chosen}, log_x, 0.6))

run = st.selectbox("Run", table["run"], key="run")
rows = views.run_metrics(paths[run])
left, middle, right = st.columns(3)
left.download_button("Metrics (CSV)", views.metrics_csv(rows), file_name=f"{run}-metrics.csv", mime="text/csv")
model = views.model_file(paths[run])
if model is not None:
    middle.download_button("Model (safetensors)", model, file_name=f"{run}.safetensors")
chosen_run = table.set_index("run").loc[run]
if chosen_run["state"] in ("stopped", "interrupted", "failed", "finished"):  # from its last checkpoint
    further = chosen_run["budget"] * (10 if chosen_run["state"] == "finished" else 1)
    budget = right.text_input("Continue to (training samples)", value=str(further), key="continue_budget")
    if right.button("Continue training", key="continue"):
        try:
            worker = pool().resume(paths[run], st.session_state.setdefault("owner", uuid.uuid4().hex),
                                   views.continue_budget(budget, paths[run]))
            st.session_state["run_dir"] = str(worker.run_dir)
            st.switch_page("pages/train.py")
        except (ValueError, PoolFull, FileNotFoundError, RunError) as e:
            st.error(f"Cannot continue: {e}")
