"""The peer systems the suite measures beside ours and the reference (bench/nchan.py,
bench/pushpin.py), and the configuration templates they start from (the files here)."""

PEERS = ("nchan", "nchan-memory", "pushpin")
