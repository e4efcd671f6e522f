"""Home / Model zoo: every shipped checkpoint with its numbers, accuracy against latency, what each model is."""

import streamlit as st

from fer_core.data import FER2013_SIZES
from fer_core.models import list_models, model_entry
from fer_core.viz import accuracy_latency_scatter
from fer_core.zoo import PERCENT_COLUMNS, ZOO_COLUMNS, zoo_table
from pages._common import get_zoo, in_app_frame

in_app_frame()

st.title("FER Explorer")
st.markdown(
    "Train, compare, explain and use facial-expression-recognition models. Every number below was "
    "measured by the shipped code under the FER2013 protocol: trained on Training, selected on "
    "PublicTest, reported on PrivateTest."
)

entries = get_zoo()
table = zoo_table(entries)
# the columns that fit the page; the rest (size, training time, recipe, published figure) one click away
MAIN_COLUMNS = [c for c in ZOO_COLUMNS if c not in ("size (MB)", "best epoch", "train hours", "published")]
TWO_DECIMALS = {c: st.column_config.NumberColumn(format="%.2f") for c in PERCENT_COLUMNS}
FULL_TEST_FACES = f"{FER2013_SIZES['PublicTest']:,} / {FER2013_SIZES['PrivateTest']:,}"  # as zoo_table writes it
st.subheader("Shipped checkpoints")
if table.empty:
    st.info("No checkpoints in checkpoints/ yet. Train some with `python scripts/train_all.py --ship checkpoints`.")
else:
    for _, row in table[table["status"] != "ok"].iterrows():
        st.warning(f"{row['model']}: {row['status']}", icon=":material/error:")
    ok = table[table["status"] == "ok"].drop(columns=["status"])
    for origin, title in (("shipped", None), ("user", "Your fine-tuned models")):
        rows = ok[ok["origin"] == origin]
        if rows.empty:
            continue
        shown = [c for c in MAIN_COLUMNS if c in rows and rows[c].notna().any()]
        if title:
            st.markdown(f"**{title}** (made on the Fine-tune page; manage them there)")
            # scored on the FER2013 folder their job used, which may be a small one: say how many faces
            if rows["test faces"].notna().any():
                shown.insert(1, "test faces")
            small = rows[rows["test faces"].notna() & (rows["test faces"] != FULL_TEST_FACES)]["model"]
            if len(small):
                st.caption(
                    f"{', '.join(small)}: scored on a smaller folder than FER2013's test splits "
                    f"({FULL_TEST_FACES} PublicTest / PrivateTest faces), so not comparable with the shipped numbers."
                )
        st.dataframe(
            rows[shown],
            hide_index=True,
            key=f"zoo_table_{origin}",
            column_config=TWO_DECIMALS,
            height=35 * (len(rows) + 1) + 3,  # every model in sight: Streamlit's default shows ten rows, then scrolls
        )
        with st.expander("All columns: size, best epoch, training time and hardware, recipe, published figure"):
            everything = rows.drop(columns=["origin"]).dropna(axis=1, how="all")
            st.dataframe(everything, hide_index=True, column_config=TWO_DECIMALS)
    if ok["CPU ms/face"].notna().any():
        st.plotly_chart(accuracy_latency_scatter(ok), key="acc_latency")
    else:
        st.caption("CPU latency appears here once checkpoints are exported with a latency measurement.")

st.subheader("Architectures")
for name in list_models():
    entry = model_entry(name)
    shipped = " · shipped" if name in set(table.get("architecture", [])) else ""
    st.markdown(f"- **{name}**: {entry.summary}{shipped}")

st.subheader("Where to next")
c1, c2, c3 = st.columns(3)
c1.page_link("pages/dataset.py", label="Dataset explorer", icon=":material/photo_library:")
c2.page_link("pages/compare.py", label="Compare models", icon=":material/compare:")
c3.page_link("pages/training.py", label="Training runs", icon=":material/show_chart:")
