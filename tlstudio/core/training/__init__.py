"""Training a run:
the session, the recipe and its phases, callbacks, feature cache, devices and distribution.
"""
