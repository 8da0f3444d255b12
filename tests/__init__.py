"""The test suite. A package, so `tests.helpers` imports the same way however pytest is run."""
