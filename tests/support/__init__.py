"""What the test modules share: fixtures (plugin modules, registered in tests/conftest.py
through pytest_plugins) and plain helpers, imported as `support.<module>` (pytest and the
benchmarks in ci/bench/ put tests/ on sys.path). tests/README.md maps the modules."""
