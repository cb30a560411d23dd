"""vae-dashboard: `streamlit run dashboard.py`. Routes to the pages in app_pages/.

`streamlit run` finds `app` below and serves this file through it, with vae_app.server's check in front of
Streamlit's: a WebSocket from another origin than the app's own page is refused. Each session runs the file as
__main__, which draws the pages.
"""

# Streamlit runs this file as __main__, so each training process, which multiprocessing starts by "spawn",
# imports it again (as __mp_main__): the guard keeps the app, and Streamlit's 0.4 s import, to the server.
if __name__ == "__main__":
    import streamlit as st

    from vae_app.guard import page_guard
    from vae_app.live_strip import live_strip
    from vae_app.views import run_index

    st.set_page_config(page_title="VAE dashboard (AEVB)", page_icon="assets/icon.png", layout="wide")  # no font server
    page = st.navigation([
        st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("app_pages/latent_explorer.py", title="Latent explorer", icon=":material/scatter_plot:"),
        st.Page("app_pages/estimator_variance.py", title="Estimator variance", icon=":material/query_stats:"),
        st.Page("app_pages/runs.py", title="Runs", icon=":material/folder_open:"),
        st.Page("app_pages/paper.py", title="Paper", icon=":material/article:"),
    ])
    run_index()  # made once per server, at its first page: it reads every run in the background from then on
    with page_guard():  # a page's unexpected failure is a message, never a traceback in the browser
        with st.sidebar:
            live_strip()  # every live run, on every page
        page.run()
elif __name__ == "dashboard":  # imported by `streamlit run` as its ASGI app (uvicorn's "dashboard:app")
    import streamlit as st

    from vae_app.server import middleware

    app = st.App("dashboard.py", middleware=middleware())
