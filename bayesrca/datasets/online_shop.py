"""DoWhy's online-shop example (MIT licence, PyWhy contributors).

Synthetic daily figures of a shop selling one product: 365 days of 2021 (normal operation) and
the first day and first quarter of 2022, when the profit dropped. In the 2022 data the unit price
was cut by 10 % and fewer people viewed the product page; DoWhy's notebook
``gcm_online_shop.ipynb`` finds **Page Views** to be the explanation of the first day's low
profit. Data copied byte for byte from that notebook (``2021 Data.csv``, ``2022 First Day.csv``,
``2022 First Quarter.csv``).
"""

from __future__ import annotations

from importlib import resources

import networkx as nx
import pandas as pd

__all__ = ["ONLINE_SHOP_EDGES", "load_online_shop", "load_online_shop_first_quarter"]

#: Causal edges ``cause -> effect`` of DoWhy's online-shop notebook (13 edges, 8 nodes).
ONLINE_SHOP_EDGES = (
    ("Page Views", "Sold Units"),
    ("Revenue", "Profit"),
    ("Unit Price", "Sold Units"),
    ("Unit Price", "Revenue"),
    ("Shopping Event?", "Page Views"),
    ("Shopping Event?", "Sold Units"),
    ("Shopping Event?", "Unit Price"),
    ("Shopping Event?", "Ad Spend"),
    ("Ad Spend", "Page Views"),
    ("Ad Spend", "Operational Cost"),
    ("Sold Units", "Revenue"),
    ("Sold Units", "Operational Cost"),
    ("Operational Cost", "Profit"),
)


def _read(name: str) -> pd.DataFrame:
    """One shipped CSV with the ``Date`` column as a DatetimeIndex and every column as float64."""
    with (resources.files(__package__) / "data" / name).open("rb") as fh:
        frame = pd.read_csv(fh, index_col="Date", parse_dates=["Date"])
    return frame.astype("float64")


def load_online_shop() -> tuple[nx.DiGraph, pd.DataFrame, pd.DataFrame]:
    """Load the online-shop example: the 2021 data and the first day of 2022.

    Column names are DoWhy's (``Shopping Event?``, ``Ad Spend``, ``Page Views``, ``Unit Price``,
    ``Sold Units``, ``Revenue``, ``Operational Cost``, ``Profit``); the ``Date`` column becomes
    the index. **Every column is float64**: the boolean ``Shopping Event?`` becomes 0.0/1.0 and
    the integer counts ``Page Views`` and ``Sold Units`` become floats. bayesrca currently models
    every node as continuous (discrete mechanisms are planned), so this is how the data enter a
    :class:`~bayesrca.BayesianSCM` in any case; DoWhy fits discrete additive-noise models to the
    two count columns.

    Returns
    -------
    graph : networkx.DiGraph
        The causal graph (13 edges, 8 nodes), see :data:`ONLINE_SHOP_EDGES`.
    normal_2021 : pandas.DataFrame
        365 rows, one per day of 2021 (15 of them shopping events).
    first_day_2022 : pandas.DataFrame
        The single row of 2022-01-01, the day whose profit is unusually low.

    See Also
    --------
    load_online_shop_first_quarter : the 90 days of 2022-01-01 to 2022-03-31.
    """
    return nx.DiGraph(list(ONLINE_SHOP_EDGES)), _read("online_shop_2021.csv"), _read("online_shop_2022_first_day.csv")


def load_online_shop_first_quarter() -> pd.DataFrame:
    """The first quarter of 2022 of the online-shop example (90 rows, same columns and dtypes).

    Returns
    -------
    pandas.DataFrame
        One row per day from 2022-01-01 to 2022-03-31, every column float64 as in
        :func:`load_online_shop`.
    """
    return _read("online_shop_2022_q1.csv")
