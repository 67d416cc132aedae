"""Everything that runs inside `faust -A streamer.app worker`: the Faust app, its runtime
resources, topics and tables, the agents, the web routes and dashboard, metrics and dead
letters, and the fixes to Faust's Kafka transport (`faust_patches`)."""
