"""Importers: content from other systems turned into Chronicle events.

Each importer is split the same way: a reader (IO: parse the foreign format into plain records), a
mapper (pure: record → envelopes, or a reason it is skipped) and a runner (IO: append in batches and
report). Keeping the mapping pure is what lets its tests run without a file or a database, and keeping
the ids deterministic is what makes a second import of the same file a no-op.
"""
