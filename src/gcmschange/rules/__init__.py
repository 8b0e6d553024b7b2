"""The rules a change is judged by: the estate, the policy, the catalogue, the approvers."""
