"""A stand-in `pynvml` for tests and the embedded lab: see pynvml.py for the fixture format."""
