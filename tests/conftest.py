"""Test-wide settings. Notebooks run under nbval in the ci profile (GENLAB_PROFILE is inherited by their kernels)."""
import os

os.environ["GENLAB_PROFILE"] = os.environ.get("GENLAB_TEST_PROFILE", "ci")
os.environ.setdefault("GENLAB_THREADS", "2")

# fixture notebooks are inputs of the runner/grader tests, not notebooks to validate with nbval
collect_ignore_glob = ["fixtures/*"]
