from pathlib import Path

import streamlit as st

from vae_app import figures, session
from vae_app.text import plain
from vae_app.views import pool
from vae_app.views import runs as views
from vae_app.workers import PoolFull
from vae_core import RunError, runs

st.title("Runs")
live = {str(w.run_dir): str(w.state) for w in pool().active_workers()}
table = views.run_table(live=live)
trash = runs.trashed()
if table.empty and not trash:
    st.info("No runs yet: train one on the Train page, or with `python -m vae_core train`.")
    st.stop()
words = st.text_input("Filter", key="filter", placeholder="words in a run's name, tags, note, dataset, state...",
                      help="shows the runs whose text holds every word; e.g. 'mnist finished' or a tag")
shown = views.matching(table, words)
every_column = st.toggle("Every column", key="every_column", help="the settings, tags, note, sweep and trainer too")
st.dataframe(shown.drop(columns="path"), hide_index=True, width="stretch", key="table",
             column_order=None if every_column else views.FIRST_COLUMNS,
             column_config={"run": st.column_config.TextColumn(help="the run's folder"),
                            "state": st.column_config.TextColumn(help="interrupted: it says it trained, but nobody "
                                                                      "holds its lock (its process ended)")})
for _, row in shown[shown["problems"] != ""].iterrows():
    st.warning(f"{plain(row['run'])} is damaged: {plain(row['problems'])}")

if not shown.empty:
    chosen = st.multiselect("Overlay the curves of", shown["run"], default=list(shown["run"][:1]), key="overlay",
                            help="each run keeps its own colour; train solid, test dashed")
    log_x = st.toggle("Log-scale x axis", value=True, key="log_x", help="the paper draws its curves on a log axis")
    paths = dict(zip(table["run"], table["path"]))
    curves = {r: rows for r in chosen if (rows := views.run_metrics(paths[r]))}
    if curves:
        st.plotly_chart(figures.learning_curves(curves, log_x, 0.6))
    elif chosen:
        st.caption(f"No learning curve to draw: {plain(', '.join(chosen))} holds no rows of metrics.")

    run = st.selectbox("Run", shown["run"], key="run")
    chosen_run = table.set_index("run").loc[run]
    rows = views.run_metrics(paths[run])
    left, middle, right = st.columns(3)
    left.download_button("Metrics (CSV)", views.metrics_csv(rows), file_name=f"{Path(run).name}-metrics.csv",
                         mime="text/csv")
    model = views.model_file(paths[run])
    if model is not None:
        middle.download_button("Model (safetensors)", model, file_name=f"{Path(run).name}.safetensors")
    problem = views.data_problem(paths[run]) if chosen_run["state"] in ("stopped", "interrupted", "failed",
                                                                         "finished") else None
    if problem:  # the user's data is gone or changed: continuing would train on other data
        right.warning(plain(f"Cannot continue {run}: {problem}"), icon=":material/error:")
    elif chosen_run["state"] in ("stopped", "interrupted", "failed", "finished"):  # from its last checkpoint
        further = chosen_run["budget"] * (10 if chosen_run["state"] == "finished" else 1)
        budget = right.text_input("Continue to (training samples)", value=str(further), key="continue_budget")
        if right.button("Continue training", key="continue"):
            try:
                worker = pool().resume(paths[run], session.owner(), views.continue_budget(budget, paths[run]))
                session.follow(worker.run_dir)
                st.switch_page("app_pages/train.py")
            except (ValueError, PoolFull, FileNotFoundError, RunError) as e:
                st.error(f"Cannot continue: {plain(e)}")

    with st.form("labels"):
        st.caption(f"Name, note and tags of {plain(run)}")
        name = st.text_input("Name", value=chosen_run["name"], key=f"name {run}")
        tags = st.text_input("Tags", value=chosen_run["tags"], key=f"tags {run}", help="separated by commas")
        note = st.text_area("Note", value=chosen_run["note"], key=f"note {run}")
        if st.form_submit_button("Save", key="save_labels"):
            runs.label(paths[run], name=name, note=note, tags=tags.split(","))
            st.rerun()
    if st.button(f"Delete {plain(run)}", key="delete", disabled=chosen_run["trained by"] != "",
                 help="moves the run to the trash, whence it can be restored"):
        try:
            runs.delete(paths[run])
            st.rerun()
        except RunError as e:
            st.error(f"Cannot delete: {plain(e)}")

if trash:
    with st.expander(f"Trash ({len(trash)})"):
        for folder in trash:
            left, right = st.columns([3, 1])
            left.write(plain(folder.name))
            if right.button("Restore", key=f"restore {folder.name}"):
                try:
                    runs.restore(folder)
                    st.rerun()
                except RunError as e:
                    st.error(f"Cannot restore: {plain(e)}")
