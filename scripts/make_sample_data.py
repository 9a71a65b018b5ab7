"""Regenerate the synthetic sample datasets in mpc/data (deterministic, seed 7).

A bank (customers: income, segment, default label) and a retailer (purchases: spend,
visits) share about 600 of their ~1000 customers; spend grows with income so the joint
statistics show something.
"""

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent.parent / "mpc" / "data"


def main() -> None:
    rng = np.random.default_rng(7)  # test data only, not a secret
    ids = np.array([f"C{i:05d}" for i in range(1600)])
    bank_ids = ids[:1000]
    retail_ids = ids[400:1400]
    income = np.round(rng.lognormal(10.5, 0.5, 1600), 2)
    segment = rng.choice(["mass", "affluent", "private"], 1600, p=[0.6, 0.3, 0.1])
    default = (rng.random(1600) < 1 / (1 + np.exp((income - 30000) / 8000))).astype(int)
    spend = np.round(0.02 * income + rng.normal(0, 150, 1600).clip(-300, 300) + 400, 2)
    visits = rng.poisson(12, 1600)
    bank = pd.DataFrame({"customer_id": bank_ids, "income": income[:1000], "segment": segment[:1000],
                         "default": default[:1000]})
    retail = pd.DataFrame({"customer_id": retail_ids, "spend": spend[400:1400], "visits": visits[400:1400]})
    shown = rng.choice(ids, 900, replace=False)
    ads = pd.DataFrame({"user_id": shown, "campaign": rng.choice(["spring", "summer"], 900)})
    ads.to_csv(OUT / "ad_impressions.csv", index=False)
    bank.sample(frac=1, random_state=1).to_csv(OUT / "bank_accounts.csv", index=False)
    retail.sample(frac=1, random_state=2).to_csv(OUT / "retailer_purchases.csv", index=False)


if __name__ == "__main__":
    main()
