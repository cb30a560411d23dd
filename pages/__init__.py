"""Every page imports this first: it keeps a request for a page from running in Streamlit's old mode.

Because this folder is called `pages/`, Streamlit starts each server process in its v1 multipage mode,
which runs `pages/<name>.py` on its own and lists the files in the sidebar; `st.navigation` in dashboard.py
switches that off, but only once dashboard.py has run. So when the first request after a (re)start is for
a page, say a tab left open on /train, the page would run without dashboard.py: a lowercase file list for
navigation, no page config, and none of dashboard.py's guard against tracebacks. Here that first run switches the
mode off and reruns through dashboard.py. (AppTest sets the mode anew before each of its runs, so there pages run
on their own after the first; Streamlit's showErrorDetails = "none" still keeps tracebacks out of the page.)
"""
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

if PagesManager.uses_pages_directory:
    PagesManager.uses_pages_directory = False
    st.rerun()
