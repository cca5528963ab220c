"""Test configuration: Hypothesis profiles.

Profiles (all ``deadline=None``: timings on shared CI machines are noisy, and
``print_blob=True``: a failure prints the ``@reproduce_failure`` line that replays it):

``dev``       the default; a moderate number of examples per property.
``ci``        selected when the environment variable ``CI`` is set (as CI services set it);
              fewer examples, so the whole suite stays within its time budget on 2 cores,
              and derandomized: CI draws the same examples on every run, so a green run
              on the developer's machine (``CI=true pytest``) is green in CI. Random
              exploration is the job of ``dev`` and ``thorough``.
``thorough``  ten times ``dev``, for hunting rare failures by hand (minutes; not for CI).

``HYPOTHESIS_PROFILE=<name>`` selects a profile explicitly and overrides both, e.g.
``HYPOTHESIS_PROFILE=ci pytest`` locally, or ``HYPOTHESIS_PROFILE=dev`` in CI for a longer run.
A test that needs fewer (or more) examples than its profile sets its own ``max_examples``
with ``@settings(max_examples=strategies.examples(n))``: ``n`` under ``dev``, scaled for the
active profile; it inherits the rest from the profile.
"""
import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True,
               # drawing arrays element by element is slow by design; that is not a bug
               suppress_health_check=[HealthCheck.too_slow])

settings.register_profile("dev", max_examples=40, **_COMMON)
settings.register_profile("ci", max_examples=30, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=400, **_COMMON)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or
                      ("ci" if os.environ.get("CI") else "dev"))
