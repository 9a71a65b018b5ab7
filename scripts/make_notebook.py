"""Write examples/notebook.ipynb (no outputs) from the cells below: edit here, then run
``python scripts/make_notebook.py``. The test suite executes the notebook."""

from pathlib import Path

import nbformat

CELLS = [
    ("markdown", """# Joint analytics with gaotie

A bank and a retailer want to know how their shared customers behave without giving
each other their customer tables. Each runs a **party server** over its own data; an
analyst at the bank submits joint queries from this notebook.

Here both servers (and the dealer that hands out Beaver-triple seeds) run on this machine
as real processes with mutual TLS: `LocalCluster`. In production each company runs
`gaotie serve --config party.toml` and the analyst uses `mpc.Client(address, tls=...)`."""),
    ("code", """%matplotlib inline
import matplotlib.pyplot as plt

from mpc import LocalCluster
from mpc.demo import sample_datasets

cluster = LocalCluster(["bank", "retailer"], datasets=sample_datasets())
cluster.start()
bank = cluster.client("bank")
cluster.addresses"""),
    ("markdown", """## What data is there?

A party lists dataset names, columns and the policy of each column: never rows."""),
    ("code", """bank.datasets(), cluster.client("retailer").datasets()"""),
    ("markdown", """## How many customers do we share?

`psi.cardinality`: ECDH private set intersection that reveals only the size."""),
    ("code", """IDS = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]
overlap = bank.run("psi.cardinality", ids=IDS)
overlap"""),
    ("markdown", """## Income vs spend over the shared customers

`join.stats` joins the two tables privately (nobody learns which rows joined; every cell
stays secret-shared) and computes the statistics on the shares."""),
    ("code", """stats = bank.run("join.stats", ids=IDS,
                 columns=["bank.accounts.income", "retailer.purchases.spend"],
                 stats=["describe", "corr", "histogram"], bins=12)
stats["describe"]"""),
    ("code", """stats["corr"]"""),
    ("markdown", """## Distribution of retail spend among bank customers

Bins with fewer customers than the retailer's `min_group_size` are suppressed."""),
    ("code", """hist = stats["histogram"]["retailer.spend"]
shown = hist[~hist.suppressed]
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(shown.lower, shown["count"], width=shown.upper - shown.lower, align="edge", edgecolor="white")
ax.set_xlabel("retail spend")
ax.set_ylabel("shared customers")
ax.set_title(f"{stats['rows']} customers in common")
hist"""),
    ("markdown", """## Spend per bank segment"""),
    ("code", """bank.run("stats.group_by", ids=IDS, key="bank.accounts.segment",
         values=["retailer.purchases.spend"])"""),
    ("code", """cluster.stop()"""),
]


def main() -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in CELLS:
        new_cell = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = new_cell(source)
        cell.pop("id", None)
        nb.cells.append(cell)
    nbformat.validator.normalize(nb)
    path = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"
    nbformat.write(nb, path)
    print(path)


if __name__ == "__main__":
    main()
