"""A bank and a retailer ask one question in SQL: spend and income per bank segment over
the customers they share, for frequent shoppers only, without either seeing the other's rows.

``Client.explain`` prints the plan before anything runs (``visits`` has the policy ``aggregate``,
so the WHERE is evaluated on shares as a secret 0/1 weight per joined row; the private join
keeps every joined cell secret-shared; the aggregates are computed on shares; small groups
are suppressed) and what each party learns;
``Client.query`` runs it as the ``sql.aggregate`` job. The same question through the
Python API of the jobs is ``stats.group_by`` (count/sum/mean only, no WHERE).

Run: python examples/sql_query.py (a plain script: no main guard needed)
"""

from __future__ import annotations

from mpc import LocalCluster
from mpc.demo import sample_datasets

SQL = """
SELECT b.segment, COUNT(*) AS customers, AVG(r.spend) AS avg_spend, STDDEV(b.income) AS sd_income
FROM bank.accounts b JOIN retailer.purchases r ON b.customer_id = r.customer_id
WHERE r.visits >= 12
GROUP BY b.segment
ORDER BY avg_spend DESC
"""

with LocalCluster(["bank", "retailer"], datasets=sample_datasets()) as cluster:
    with cluster.client("bank") as bank:
        print(bank.explain(SQL))
        result = bank.query(SQL, join="dealer")
print()
print(result.to_string(index=False))
