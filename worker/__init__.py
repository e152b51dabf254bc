"""Stoker's worker daemon: fetch loop, retries, failed list, recovery, shutdown, CLI."""
