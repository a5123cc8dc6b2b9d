"""Routing: pure decisions about which provider reads a page. No I/O, no engines."""
