"""
Where the shared rate limits live: a C{redis://} URL read into a value, checked when the config is loaded so
that a mistake is a config error, not a failure at the first request.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from attrs import field, frozen


@frozen
class RedisAddress:
    """
    One Redis server, the database the limits use in it and the login (an ACL user, or only a password for
    Redis's C{default} user; none for a Redis without AUTH).
    """

    host: str = "127.0.0.1"
    port: int = 6379
    database: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_redis_url(url: str) -> RedisAddress:
    """
    Read C{redis://[[username]:password@]host[:port][/database]}; user name and password are percent-decoded.

    @raise ValueError: not such a URL; the message does not repeat the URL, which may carry a password.
    """
    parts = urlsplit(url)
    if parts.scheme != "redis":
        hint = " (TLS to Redis is not supported yet)" if parts.scheme == "rediss" else ""
        raise ValueError(f"a Redis URL starts with redis://, not {parts.scheme or 'no scheme'}://{hint}")
    if parts.query or parts.fragment:
        raise ValueError("a Redis URL takes no query or fragment: redis://[[user]:password@]host[:port][/db]")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("the port of the Redis URL is not a number from 1 to 65535") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database of the Redis URL is a number (redis://host:port/0), not {path!r}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if username is not None and password is None:
        raise ValueError("the Redis URL names a user but no password (redis://user:password@host)")
    return RedisAddress(parts.hostname or "127.0.0.1", port, int(path) if path else 0, username, password)
