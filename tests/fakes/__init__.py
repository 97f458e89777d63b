"""Loopback fakes of Google services for tests: nothing here ever leaves 127.0.0.1."""
