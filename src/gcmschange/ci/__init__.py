"""GitLab CI: the pipeline's variables, the changes a pipeline is about, the merge-request note."""
