"""The embedded server: a stable port, shared by every user of one data folder, stopped
by the last one to leave, restarted in place when it dies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from worker.redis_server import (
    DEFAULT_PORT,
    EmbeddedServer,
    RedisProcess,
    choose_port,
    free_port,
    redis_cli_command,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("saved", "free", "expected"),
    [
        (None, {DEFAULT_PORT}, DEFAULT_PORT),
        (41000, {DEFAULT_PORT, 41000}, DEFAULT_PORT),
        (41000, {41000}, 41000),
        (41000, set(), 50000),
        (None, set(), 50000),
    ],
)
def test_choose_port_prefers_the_default_then_the_saved_port(
    saved: int | None, free: set[int], expected: int
) -> None:
    assert choose_port(saved, lambda p: p in free, lambda: 50000) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "redis-cli LPUSH q 'x'"),
        ("redis://127.0.0.1:41000/0", "redis-cli -p 41000 LPUSH q 'x'"),
        ("redis://10.0.0.5:6379/2", "redis-cli -h 10.0.0.5 -n 2 LPUSH q 'x'"),
    ],
)
def test_redis_cli_command_names_only_what_differs_from_the_defaults(
    url: str, expected: str
) -> None:
    assert redis_cli_command(url, "q", "x") == expected


def _alive(url: str | None) -> bool:
    try:
        return bool(url) and redis.Redis.from_url(url, socket_connect_timeout=0.3).ping()
    except redis.RedisError:
        return False


def server(folder: Path) -> EmbeddedServer:
    """A handle preferring a free port (not 6379, which others on this machine dial)."""
    return EmbeddedServer(folder, free_port())


def test_two_users_share_one_server_and_the_last_to_leave_stops_it(tmp_path: Path) -> None:
    first, second = server(tmp_path), EmbeddedServer(tmp_path)
    url = first.acquire()
    assert second.acquire() == url
    first.release()
    assert _alive(url)
    second.release()
    assert not _alive(url)


def test_a_reader_does_not_start_the_server(tmp_path: Path) -> None:
    assert server(tmp_path).acquire(start=False) is None
    assert not (tmp_path / "redis" / "server.json").exists()


def test_queued_data_survives_the_server_stopping_and_starting_again(tmp_path: Path) -> None:
    user = server(tmp_path)
    redis.Redis.from_url(user.acquire()).lpush("q", "job")
    user.release()
    again = server(tmp_path)
    try:
        assert redis.Redis.from_url(again.acquire()).lrange("q", 0, -1) == [b"job"]
    finally:
        again.release()


def test_the_preferred_port_is_used_when_free(tmp_path: Path) -> None:
    port = free_port()
    user = EmbeddedServer(tmp_path, port)
    assert user.acquire() == f"redis://127.0.0.1:{port}/0"
    user.release()


def test_the_port_is_saved_and_reused_when_the_preferred_one_is_taken(tmp_path: Path) -> None:
    port = free_port()
    squatter = RedisProcess(tmp_path / "other", port=port, appendonly=False).start()
    try:
        user = EmbeddedServer(tmp_path / "a", port)
        first = user.acquire()
        user.release()
        again = EmbeddedServer(tmp_path / "a", port)
        assert again.acquire() == first != f"redis://127.0.0.1:{port}/0"
        again.release()
    finally:
        squatter.stop()


def test_a_server_of_another_data_folder_on_the_saved_port_is_not_joined(
    tmp_path: Path,
) -> None:
    a, b = server(tmp_path / "a"), server(tmp_path / "b")
    url_a = a.acquire()
    (tmp_path / "b" / "redis").mkdir(parents=True)
    (tmp_path / "b" / "redis" / "server.json").write_text(json.dumps({"url": url_a}))
    try:
        assert b.acquire() != url_a
    finally:
        b.release()
        a.release()


def test_a_dead_server_is_restarted_on_the_same_port(tmp_path: Path) -> None:
    user = server(tmp_path)
    url = user.acquire()
    redis.Redis.from_url(url).shutdown(nosave=False)
    assert user.revive() and user.url == url and _alive(url)
    user.release()
