"""Stage 3, plan: Ansible check + diff on the real hosts, the report and the digest.

Drift is the same look at an environment with no change applied.
"""
