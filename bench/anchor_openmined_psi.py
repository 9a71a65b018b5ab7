"""openmined-psi 2.0 anchor: RAW-mode PSI, client and server in one process, reveal_intersection.

Runs inside its own virtual environment (``bench/anchors.py`` makes it: openmined-psi pins
an old protobuf). Usage: ``python anchor_openmined_psi.py N``: N items a side, half in
common; prints ``ANCHOR_JSON {"n": N, "seconds": s}`` (setup, request, response, intersection).
"""

import json
import sys
import time

import private_set_intersection.python as psi

n = int(sys.argv[1])
client_items = [str(i) for i in range(n)]
server_items = [str(i) for i in range(n // 2, n + n // 2)]
t0 = time.perf_counter()
c = psi.client.CreateWithNewKey(True)
s = psi.server.CreateWithNewKey(True)
setup = psi.ServerSetup()
setup.ParseFromString(s.CreateSetupMessage(1e-9, n, server_items, psi.DataStructure.RAW).SerializeToString())
req = psi.Request()
req.ParseFromString(c.CreateRequest(client_items).SerializeToString())
resp = psi.Response()
resp.ParseFromString(s.ProcessRequest(req).SerializeToString())
inter = c.GetIntersection(setup, resp)
assert len(inter) == n - n // 2, len(inter)
print("ANCHOR_JSON " + json.dumps({"n": n, "seconds": time.perf_counter() - t0}))
