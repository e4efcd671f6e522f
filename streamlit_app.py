"""FER Explorer dashboard: the navigation frame and the shared sidebar. Pages live in ``pages/``."""

import streamlit as st

from pages._common import sidebar

# an emoji favicon is drawn in the browser; a ":material/..." one is fetched from fonts.gstatic.com (phoning home)
st.set_page_config(page_title="FER Explorer", page_icon="🙂", layout="wide")

PAGES = {
    "Explore": [
        st.Page("pages/zoo.py", title="Model zoo", icon=":material/view_module:", default=True),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/photo_library:"),
        st.Page("pages/compare.py", title="Compare models", icon=":material/compare:"),
        st.Page("pages/robustness.py", title="Robustness", icon=":material/shield:"),
        st.Page("pages/training.py", title="Training runs", icon=":material/show_chart:"),
        st.Page("pages/explain.py", title="Explain", icon=":material/psychology:"),
    ],
    "Use": [
        st.Page("pages/upload.py", title="Upload photos", icon=":material/upload:"),
        st.Page("pages/webcam.py", title="Webcam", icon=":material/videocam:"),
    ],
    "Train": [st.Page("pages/finetune.py", title="Fine-tune", icon=":material/tune:")],
}

# The menu is the app's own (page links), not Streamlit's: with a pages/ folder, a cold server's first
# visit showed Streamlit's folder menu ("streamlit app", "common", ...) for about a second before the
# navigation took over. client.showSidebarNavigation = false hides that one; position="hidden" the other.
navigation = st.navigation(PAGES, position="hidden")
with st.sidebar:
    for section, pages in PAGES.items():
        st.caption(section)
        for page in pages:
            st.page_link(page)
sidebar()
navigation.run()
