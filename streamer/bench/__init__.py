"""`streamer bench`: the pipeline beside a textbook baseline, Faust's floor and the raw client.

Every contender reads the same pre-produced backlog on the embedded broker and Redis, in
one run; see `streamer.bench.command` for the flags and `streamer.bench.harness` for how
each figure is measured.
"""
