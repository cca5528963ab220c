"""Test configuration: Hypothesis profiles.

Profiles (all ``deadline=None``: timings on shared CI machines are noisy, and
``print_blob=True``: a failure prints the ``@reproduce_failure`` line that replays it):

``ci``        the default, and what CI runs: derandomized, so every run draws the same
              examples and a green run on one machine is green on another (``pytest`` and
              the README's test command never fail by chance); few enough examples that
              the whole suite stays within its time budget on 2 cores.
``dev``       random exploration, by hand (``HYPOTHESIS_PROFILE=dev pytest``): new
              examples on every run, more of them. It finds cases the fixed examples do
              not; a failure it finds is a bug or a test to sharpen (see the notes of the
              tests that keep ReLU kinks out), never a reason to loosen a tolerance.
``thorough``  ten times ``dev``, for hunting rare failures by hand (minutes; not for CI).

``HYPOTHESIS_PROFILE=<name>`` selects a profile explicitly.
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

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "ci")
