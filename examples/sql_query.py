"""A bank and a retailer ask questions in SQL over the customers they share, without either
seeing the other's rows.

1. Spend and income per bank segment, for frequent shoppers only. ``Client.explain``
   prints the plan before anything runs (``visits`` has the policy ``aggregate``, so the
   WHERE is evaluated on shares as a secret 0/1 weight per joined row; the private join
   keeps every joined cell secret-shared; the aggregates are computed on shares; small
   groups are suppressed) and what each party learns; ``Client.query`` runs it as the
   ``sql.aggregate`` job. The same question through the Python API of the jobs is
   ``stats.group_by`` (count/sum/mean only, no WHERE, no STDDEV).
2. The median spend per segment, keeping the segments whose spend varies (HAVING on a
   standard deviation): the medians use secret ranks and the HAVING is compared on
   shares, so only whether each segment passes is opened.
3. Row-level output where policy allows it: which of the bank's 'private' customers the
   retailer also has (the join key and a plaintext column, delivered to the bank, the
   PSI's receiver; the ``sql.rows`` job). The retailer learns only the sizes.

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

MEDIANS = """
SELECT b.segment, MEDIAN(r.spend) AS median_spend, QUANTILE_CONT(b.income, 0.9) AS p90_income
FROM bank.accounts b JOIN retailer.purchases r USING (customer_id)
GROUP BY b.segment HAVING STDDEV(r.spend) > 100
"""

ROWS = """
SELECT customer_id, b.segment FROM bank.accounts b JOIN retailer.purchases r USING (customer_id)
WHERE b.segment = 'private' ORDER BY customer_id LIMIT 5
"""

with LocalCluster(["bank", "retailer"], datasets=sample_datasets()) as cluster:
    with cluster.client("bank") as bank:
        print(bank.explain(SQL))
        result = bank.query(SQL, join="dealer")
        medians = bank.query(MEDIANS, join="dealer")
        print()
        print(bank.explain(ROWS, reveal_to="bank"))
        rows = bank.query(ROWS, reveal_to="bank")
print()
print(result.to_string(index=False))
print()
print("medians per segment (HAVING STDDEV(r.spend) > 100 on shares):")
print(medians.to_string(index=False))
print()
print("first shared 'private' customers (to the bank only):")
print(rows.to_string(index=False))
