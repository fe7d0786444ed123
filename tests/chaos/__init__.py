"""Fault-injection suite real workers, real brokers, real faults; bounded in `make test`,
full with ``CHAOS_FULL=1`` (`make chaos`)."""
