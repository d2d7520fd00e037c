"""Metering: usage per tenant and resource, folded from the node's journal.

The journal is the source, not samples: every change that starts or stops something
chargeable is an entry with a gap-free seq and the node's time, so the node and the
registry (which holds the same entries) fold the same intervals. ``fold`` turns
entries into intervals; ``report`` buckets and rates them.
"""
