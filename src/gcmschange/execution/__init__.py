"""The one room that speaks to ansible-runner, testinfra and Mitogen."""
