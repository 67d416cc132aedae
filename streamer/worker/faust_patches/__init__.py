"""Fixes to faust-streaming 0.15 found on Apache Kafka, each in a module named for what it
patches: `aiokafka_transport` (consumer thread, consumer and producer of Faust's aiokafka
transport), `recovery` (table recovery under a rebalance) and `transactions` (Faust's
exactly_once transaction manager)."""
