"""
AWS credentials and Signature Version 4 for Bedrock, kept off the reactor and cheap per request.

Credentials come from boto3's own chain (environment, shared config and profiles, SSO, web identity, container
and instance metadata), optionally exchanged for a role's through STS.  Resolving or refreshing them can block
on files and the network, so it runs on one dedicated thread (L{deferToThreadPool}), never on the reactor and
never a thread per request: L{AwsCredentials.get} answers from its cache at once, refreshes in the background
before expiry, and lets every request that finds the cache cold wait for the one resolution in flight.

Signing (L{SigV4Signer}) follows botocore's C{SigV4Auth} byte for byte (the tests compare the two for a fixed
clock and key) but caches the derived signing key per day, region and service: a request costs one SHA-256 of
the body and of the canonical request and two HMACs, not the five of a cold signature and botocore's request
object machinery.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from attrs import frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

log = Logger()

#: Refresh temporary credentials this many seconds before they expire (botocore's own advisory window).
REFRESH_AHEAD = 15 * 60.0
#: Hand out no credentials closer than this to their expiry (botocore's mandatory window).
MARGIN = 10 * 60.0


@frozen(repr=False)
class FrozenCredentials:
    access_key: str
    secret_key: str
    token: str | None = None
    #: Clock seconds at which they expire; None for long-term keys.
    expires_at: float | None = None

    def __repr__(self) -> str:
        return f"FrozenCredentials(access_key={self.access_key[:4]}..., expires_at={self.expires_at})"


class CredentialsError(Exception):
    """
    boto3 found no usable credentials; C{str()} names the cause without any secret.
    """


def boto3_resolver(profile: str | None, role_arn: str | None, region: str) -> Callable[[], FrozenCredentials]:
    """
    A blocking function that resolves credentials with boto3 (to be called on the credentials thread).

    The botocore credentials object is made once and kept, so refreshable ones (SSO, web identity, an
    assumed role) refresh through botocore's own logic.
    """
    state: dict[str, Any] = {}

    def resolve() -> FrozenCredentials:
        import boto3
        from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            creds = state.get("creds")
            if creds is None:
                session = boto3.Session(profile_name=profile, region_name=region)
                base = session.get_credentials()
                if base is None:
                    raise CredentialsError("no AWS credentials found (environment, shared config, SSO, web "
                                           "identity or instance metadata)")
                if role_arn:
                    fetcher = AssumeRoleCredentialFetcher(
                        session._session.create_client, base, role_arn,
                        extra_args={"RoleSessionName": "sapproxy"})
                    creds = DeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role")
                else:
                    creds = base
                state["creds"] = creds
            frozen = creds.get_frozen_credentials()
        except CredentialsError:
            raise
        except (BotoCoreError, ClientError) as e:
            raise CredentialsError(f"{type(e).__name__}: {_safe(str(e))}") from None
        expiry = getattr(creds, "_expiry_time", None)
        return FrozenCredentials(frozen.access_key, frozen.secret_key, frozen.token,
                                 expiry.timestamp() if expiry is not None else None)

    return resolve


def _safe(message: str) -> str:
    # botocore's messages name profiles and files, never secrets; keep them short all the same.
    return message.splitlines()[0][:200] if message else ""


class AwsCredentials:
    """
    The current credentials of one Bedrock provider.

    @param resolve: blocking; called only on C{threadpool}.
    @param threadpool: the dedicated credentials pool (one thread is plenty: resolutions are rare and serial).
    """

    def __init__(self, name: str, resolve: Callable[[], FrozenCredentials], reactor: Any,
                 threadpool: ThreadPool, what: str = "AWS credentials") -> None:
        self.name = name
        self.what = what
        self._resolve = resolve
        self._reactor = reactor
        self._pool = threadpool
        self._current: FrozenCredentials | None = None
        self._waiters: list[Deferred[FrozenCredentials]] | None = None
        self.resolutions = 0
        self.last_error: str | None = None

    def _usable(self, creds: FrozenCredentials | None, margin: float) -> bool:
        if creds is None:
            return False
        return creds.expires_at is None or creds.expires_at - self._now() > margin

    def _now(self) -> float:
        seconds: float = self._reactor.seconds()
        return seconds

    def get(self) -> Deferred[FrozenCredentials]:
        """
        Usable credentials: at once from the cache (starting a background refresh when they near expiry),
        else after the one resolution in flight.
        """
        current = self._current
        if self._usable(current, MARGIN):
            assert current is not None
            if not self._usable(current, REFRESH_AHEAD) and self._waiters is None:
                self._waiters = []
                self._start()
            return succeed(current)
        waiter: Deferred[FrozenCredentials] = Deferred()
        if self._waiters is None:
            self._waiters = [waiter]
            self._start()
        else:
            self._waiters.append(waiter)
        return waiter

    def warm(self) -> None:
        """
        Resolve in the background now (at start-up), so the first request does not wait and C{/health} shows
        credentials that cannot be had before anyone asks; only on a reactor with threads (not a test clock).
        """
        from twisted.internet.interfaces import IReactorThreads

        if IReactorThreads.providedBy(self._reactor) and self._current is None and self._waiters is None:
            self.get().addErrback(lambda _: None)

    def invalidate(self) -> None:
        """
        AWS refused the credentials: resolve them again on the next request.
        """
        self._current = None

    def state(self) -> dict[str, Any]:
        current = self._current
        valid = self._usable(current, MARGIN)
        return {
            "credentials": "valid" if valid else ("resolving" if self._waiters is not None else "none"),
            "expires_in": round(current.expires_at - self._now())
            if valid and current is not None and current.expires_at is not None else None,
            "resolutions": self.resolutions,
            "last_error": self.last_error,
        }

    def _start(self) -> None:
        self.resolutions += 1
        if not self._pool.started:
            self._pool.start()
        d = deferToThreadPool(self._reactor, self._pool, self._resolve)
        d.addCallbacks(self._resolved, self._failed)

    def _resolved(self, creds: FrozenCredentials) -> None:
        self._current = creds
        self.last_error = None
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            waiter.callback(creds)

    def _failed(self, failure: Failure) -> None:
        error = failure.value
        self.last_error = str(error) if isinstance(error, CredentialsError) else type(error).__name__
        log.warn("{what} for provider {name} failed: {error}", what=self.what, name=self.name, error=self.last_error)
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            waiter.errback(CredentialsError(self.last_error))


def credentials_threadpool() -> ThreadPool:
    """
    A pool of one thread for AWS credential resolution (not started: L{AwsCredentials} starts it on first use).
    """
    return ThreadPool(minthreads=0, maxthreads=1, name="sapproxy-aws-credentials")


_shared: dict[int, ThreadPool] = {}


def shared_threadpool(reactor: Any) -> ThreadPool:
    """
    The process's one credentials thread for C{reactor}, shared by every Bedrock provider (and kept across
    config reloads); stopped when the reactor shuts down.
    """
    pool = _shared.get(id(reactor))
    if pool is None:
        pool = _shared[id(reactor)] = credentials_threadpool()

        def stop() -> None:
            _shared.pop(id(reactor), None)
            if pool.started:
                pool.stop()

        adder = getattr(reactor, "addSystemEventTrigger", None)
        if adder is not None:
            adder("during", "shutdown", stop)
    return pool


_ALGORITHM = "AWS4-HMAC-SHA256"


class SigV4Signer:
    """
    SigV4 for one region and service, with the day's signing key cached per secret key.
    """

    def __init__(self, region: str, service: str = "bedrock") -> None:
        self.region = region
        self.service = service
        self._keys: dict[tuple[str, str], bytes] = {}
        self._paths: dict[str, tuple[str, str, str, str]] = {}

    def _signing_key(self, secret: str, day: str) -> bytes:
        key = self._keys.get((secret, day))
        if key is None:
            if len(self._keys) > 8:
                self._keys.clear()
            k = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
            k = hmac.new(k, self.region.encode(), hashlib.sha256).digest()
            k = hmac.new(k, self.service.encode(), hashlib.sha256).digest()
            key = self._keys[(secret, day)] = hmac.new(k, b"aws4_request", hashlib.sha256).digest()
        return key

    def _split(self, url: str) -> tuple[str, str, str, str]:
        parts = self._paths.get(url)
        if parts is None:
            split = urlsplit(url)
            host = split.hostname or ""
            if split.port is not None and not ((split.scheme == "https" and split.port == 443)
                                               or (split.scheme == "http" and split.port == 80)):
                host = f"{host}:{split.port}"
            # As botocore: the query's (key, value) pairs sorted, as they stand in the URL.
            pairs = sorted(tuple(pair.partition("=")[::2]) for pair in split.query.split("&")) if split.query else []
            query = "&".join(f"{k}={v}" for k, v in pairs)
            parts = (host, quote(split.path or "/", safe="/~"), query, split.scheme)
            if len(self._paths) < 10_000:
                self._paths[url] = parts
        return parts

    def sign(self, creds: FrozenCredentials, url: str, body: bytes, headers: dict[str, str],
             now: float) -> dict[str, str]:
        """
        The headers to add to a POST of C{body} to C{url} carrying C{headers} (lower-case names, all signed):
        C{host}, C{x-amz-date}, C{x-amz-security-token} for temporary credentials, and C{authorization}.
        """
        host, path, query, _ = self._split(url)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = stamp[:8]
        signed = dict(headers)
        signed["host"] = host
        signed["x-amz-date"] = stamp
        if creds.token:
            signed["x-amz-security-token"] = creds.token
        names = sorted(signed)
        canonical_headers = "".join(f"{n}:{' '.join(signed[n].split())}\n" for n in names)
        signed_names = ";".join(names)
        canonical = "\n".join(("POST", path, query, canonical_headers, signed_names,
                               hashlib.sha256(body).hexdigest()))
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(creds.secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        out = {k: v for k, v in signed.items() if k not in headers}
        out["authorization"] = (f"{_ALGORITHM} Credential={creds.access_key}/{scope}, "
                                f"SignedHeaders={signed_names}, Signature={signature}")
        return out
